# Messaggi della fase e-mail, italiano. Un messaggio che manca qui viene preso in inglese.

subject-password-reset = Reimposta la password di { $brand }
subject-account-confirmation = Conferma il tuo account { $brand }
subject-default = { $brand }

password-reset-greeting = Ciao { $username },
password-reset-intro = Di recente hai chiesto di cambiare la password del tuo account { $brand }. Usa il pulsante qui sotto per impostarne una nuova.
password-reset-intro-text = Di recente hai chiesto di cambiare la password del tuo account { $brand }. Usa il link qui sotto per impostarne una nuova.
password-reset-button = Reimposta password
password-reset-ignore = Se non hai chiesto di cambiare la password, ignora questa e-mail. Il link qui sopra scade { $expires }.

account-confirmation-heading = Benvenuto!
account-confirmation-intro = Siamo felici che tu abbia iniziato. Per prima cosa conferma il tuo account: premi il pulsante qui sotto.
account-confirmation-intro-text = Siamo felici che tu abbia iniziato. Per prima cosa conferma il tuo account: apri il link qui sotto.
account-confirmation-button = Conferma account
account-confirmation-fallback = Se non funziona, copia questo link nel browser: { $url }

mail-footer = Inviato da { $brand }.
mail-support = Domande? Scrivi a { $address }.
mail-expires-at = Questo link scade il { $date }.

msg-sent = E-mail inviata correttamente.
msg-verified = E-mail verificata correttamente.
msg-no-pending-user = Nessun utente in attesa.
msg-too-many-attempts = Troppi tentativi di verifica. Riprova tra { $minutes ->
    [one] un minuto
   *[other] { $minutes } minuti
}.
consent-header = Continua per confermare questo indirizzo e-mail.

# "tra 31 minuti" / "31 minuti fa"
time-now = adesso
time-future = tra { $amount }
time-past = { $amount } fa
time-seconds = { $n ->
    [one] un secondo
   *[other] { $n } secondi
}
time-minutes = { $n ->
    [one] un minuto
   *[other] { $n } minuti
}
time-hours = { $n ->
    [one] un'ora
   *[other] { $n } ore
}
time-days = { $n ->
    [one] un giorno
   *[other] { $n } giorni
}
time-day-hours = { $n ->
    [one] un'ora
   *[other] { $n } ore
}
time-days-and-hours = { $days } e { $hours }

date-format = { $day } { $month } { $year }, { $time } UTC
month-1 = gennaio
month-2 = febbraio
month-3 = marzo
month-4 = aprile
month-5 = maggio
month-6 = giugno
month-7 = luglio
month-8 = agosto
month-9 = settembre
month-10 = ottobre
month-11 = novembre
month-12 = dicembre
