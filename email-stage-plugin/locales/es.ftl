# Mensajes de la etapa de correo, español. Un mensaje que falte aquí se toma en inglés.

subject-password-reset = Restablece tu contraseña de { $brand }
subject-account-confirmation = Confirma tu cuenta de { $brand }
subject-default = { $brand }

password-reset-greeting = Hola, { $username }:
password-reset-intro = Hace poco pediste cambiar la contraseña de tu cuenta de { $brand }. Usa el botón de abajo para elegir una nueva.
password-reset-intro-text = Hace poco pediste cambiar la contraseña de tu cuenta de { $brand }. Usa el enlace de abajo para elegir una nueva.
password-reset-button = Restablecer contraseña
password-reset-ignore = Si no pediste cambiar la contraseña, ignora este correo. El enlace de arriba caduca { $expires }.

account-confirmation-heading = ¡Te damos la bienvenida!
account-confirmation-intro = Nos alegra que empieces. Primero tienes que confirmar tu cuenta: pulsa el botón de abajo.
account-confirmation-intro-text = Nos alegra que empieces. Primero tienes que confirmar tu cuenta: abre el enlace de abajo.
account-confirmation-button = Confirmar cuenta
account-confirmation-fallback = Si no funciona, copia este enlace en tu navegador: { $url }

mail-footer = Enviado por { $brand }.
mail-support = ¿Preguntas? Escribe a { $address }.
mail-expires-at = Este enlace caduca el { $date }.

msg-sent = Correo enviado correctamente.
msg-verified = Correo verificado correctamente.
msg-no-pending-user = No hay ningún usuario pendiente.
msg-too-many-attempts = Demasiados intentos de verificación. Vuelve a intentarlo dentro de { $minutes ->
    [one] un minuto
   *[other] { $minutes } minutos
}.
consent-header = Continúa para confirmar esta dirección de correo.

time-now = ahora
time-future = dentro de { $amount }
time-past = hace { $amount }
time-seconds = { $n ->
    [one] un segundo
   *[other] { $n } segundos
}
time-minutes = { $n ->
    [one] un minuto
   *[other] { $n } minutos
}
time-hours = { $n ->
    [one] una hora
   *[other] { $n } horas
}
time-days = { $n ->
    [one] un día
   *[other] { $n } días
}
time-day-hours = { $n ->
    [one] una hora
   *[other] { $n } horas
}
time-days-and-hours = { $days } y { $hours }

date-format = { $day } de { $month } de { $year }, { $time } UTC
month-1 = enero
month-2 = febrero
month-3 = marzo
month-4 = abril
month-5 = mayo
month-6 = junio
month-7 = julio
month-8 = agosto
month-9 = septiembre
month-10 = octubre
month-11 = noviembre
month-12 = diciembre
