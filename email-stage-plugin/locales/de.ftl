# Nachrichten der E-Mail-Stufe, Deutsch. Fehlt hier eine Nachricht, gilt die englische.

subject-password-reset = Ihr { $brand }-Passwort zurücksetzen
subject-account-confirmation = Ihr { $brand }-Konto bestätigen
subject-default = { $brand }

password-reset-greeting = Hallo { $username },
password-reset-intro = Sie haben vor Kurzem angefordert, das Passwort Ihres { $brand }-Kontos zu ändern. Mit der Schaltfläche unten legen Sie ein neues Passwort fest.
password-reset-intro-text = Sie haben vor Kurzem angefordert, das Passwort Ihres { $brand }-Kontos zu ändern. Mit dem Link unten legen Sie ein neues Passwort fest.
password-reset-button = Passwort zurücksetzen
password-reset-ignore = Wenn Sie keine Passwortänderung angefordert haben, ignorieren Sie diese E-Mail bitte. Der Link oben läuft { $expires } ab.

account-confirmation-heading = Willkommen!
account-confirmation-intro = Schön, dass Sie dabei sind. Bestätigen Sie zuerst Ihr Konto: Drücken Sie einfach auf die Schaltfläche unten.
account-confirmation-intro-text = Schön, dass Sie dabei sind. Bestätigen Sie zuerst Ihr Konto: Öffnen Sie einfach den Link unten.
account-confirmation-button = Konto bestätigen
account-confirmation-fallback = Falls das nicht funktioniert, kopieren Sie diesen Link in Ihren Browser: { $url }

mail-footer = Gesendet von { $brand }.
mail-support = Fragen? Schreiben Sie an { $address }.
mail-expires-at = Dieser Link läuft am { $date } ab.

msg-sent = E-Mail erfolgreich gesendet.
msg-verified = E-Mail-Adresse erfolgreich bestätigt.
msg-no-pending-user = Kein ausstehender Benutzer.
msg-too-many-attempts = Zu viele Bestätigungsversuche. Bitte versuchen Sie es in { $minutes ->
    [one] einer Minute
   *[other] { $minutes } Minuten
} erneut.
consent-header = Fahren Sie fort, um diese E-Mail-Adresse zu bestätigen.

# "in 31 Minuten" / "vor 31 Minuten": beide Präpositionen verlangen den Dativ.
time-now = jetzt
time-future = in { $amount }
time-past = vor { $amount }
time-seconds = { $n ->
    [one] einer Sekunde
   *[other] { $n } Sekunden
}
time-minutes = { $n ->
    [one] einer Minute
   *[other] { $n } Minuten
}
time-hours = { $n ->
    [one] einer Stunde
   *[other] { $n } Stunden
}
time-days = { $n ->
    [one] einem Tag
   *[other] { $n } Tagen
}
time-day-hours = { $n ->
    [one] einer Stunde
   *[other] { $n } Stunden
}
time-days-and-hours = { $days } und { $hours }

date-format = { $day }. { $month } { $year }, { $time } UTC
month-1 = Januar
month-2 = Februar
month-3 = März
month-4 = April
month-5 = Mai
month-6 = Juni
month-7 = Juli
month-8 = August
month-9 = September
month-10 = Oktober
month-11 = November
month-12 = Dezember
