# Messages de l'étape e-mail, français. Un message absent ici est pris en anglais.

subject-password-reset = Réinitialisez votre mot de passe { $brand }
subject-account-confirmation = Confirmez votre compte { $brand }
subject-default = { $brand }

password-reset-greeting = Bonjour { $username },
password-reset-intro = Vous avez récemment demandé à changer le mot de passe de votre compte { $brand }. Utilisez le bouton ci-dessous pour choisir un nouveau mot de passe.
password-reset-intro-text = Vous avez récemment demandé à changer le mot de passe de votre compte { $brand }. Utilisez le lien ci-dessous pour choisir un nouveau mot de passe.
password-reset-button = Réinitialiser le mot de passe
password-reset-ignore = Si vous n'avez pas demandé à changer de mot de passe, ignorez cet e-mail. Le lien ci-dessus expire { $expires }.

account-confirmation-heading = Bienvenue !
account-confirmation-intro = Nous sommes ravis de vous compter parmi nous. Commencez par confirmer votre compte : appuyez simplement sur le bouton ci-dessous.
account-confirmation-intro-text = Nous sommes ravis de vous compter parmi nous. Commencez par confirmer votre compte : ouvrez simplement le lien ci-dessous.
account-confirmation-button = Confirmer le compte
account-confirmation-fallback = Si cela ne fonctionne pas, copiez ce lien dans votre navigateur : { $url }

mail-footer = Envoyé par { $brand }.
mail-support = Des questions ? Écrivez à { $address }.
mail-expires-at = Ce lien expire le { $date }.

msg-sent = E-mail envoyé avec succès.
msg-verified = Adresse e-mail vérifiée avec succès.
msg-no-pending-user = Aucun utilisateur en attente.
msg-too-many-attempts = Trop de tentatives de vérification. Veuillez réessayer dans { $minutes ->
    [one] une minute
   *[other] { $minutes } minutes
}.
consent-header = Continuez pour confirmer cette adresse e-mail.

time-now = maintenant
time-future = dans { $amount }
time-past = il y a { $amount }
time-seconds = { $n ->
    [one] une seconde
   *[other] { $n } secondes
}
time-minutes = { $n ->
    [one] une minute
   *[other] { $n } minutes
}
time-hours = { $n ->
    [one] une heure
   *[other] { $n } heures
}
time-days = { $n ->
    [one] un jour
   *[other] { $n } jours
}
time-day-hours = { $n ->
    [one] une heure
   *[other] { $n } heures
}
time-days-and-hours = { $days } et { $hours }

date-format = { $day } { $month } { $year } à { $time } UTC
month-1 = janvier
month-2 = février
month-3 = mars
month-4 = avril
month-5 = mai
month-6 = juin
month-7 = juillet
month-8 = août
month-9 = septembre
month-10 = octobre
month-11 = novembre
month-12 = décembre
