# Messages of the email stage, English: the default catalog. Every other catalog
# falls back to it, so every message any template or the stage uses must be here.
# English texts keep the wording of the specified stage (the spec's catalogue of
# user-visible strings); `$brand` is the operator's brand name.

## Subjects, used when the stage configures none.
subject-password-reset = Reset your { $brand } password
subject-account-confirmation = Confirm your { $brand } account
subject-default = { $brand }

## email/password_reset
password-reset-greeting = Hi { $username },
password-reset-intro = You recently requested to change your password for your { $brand } account. Use the button below to set a new password.
password-reset-intro-text = You recently requested to change your password for your { $brand } account. Use the link below to set a new password.
password-reset-button = Reset Password
password-reset-ignore = If you did not request a password change, please ignore this Email. The link above is valid for { $expires }.

## email/account_confirmation
account-confirmation-heading = Welcome!
account-confirmation-intro = We're excited to have you get started. First, you need to confirm your account. Just press the button below.
account-confirmation-intro-text = We're excited to have you get started. First, you need to confirm your account. Just open the link below.
account-confirmation-button = Confirm Account
account-confirmation-fallback = If that doesn't work, copy and paste the following link in your browser: { $url }

## Shared by every mail
mail-footer = Sent by { $brand }.
mail-support = Questions? Write to { $address }.
mail-expires-at = This link expires on { $date }.

## Messages the stage shows in the flow
msg-sent = Email Successfully sent.
msg-verified = Successfully verified Email.
msg-no-pending-user = No pending user.
# Always "minutes", whatever the number, as the specified stage says it.
msg-too-many-attempts = Too many account verification attempts. Please try again after { $minutes } minutes.
consent-header = Continue to confirm this email address.

## Relative times, as Django's naturaltime writes them ("31 minutes from now").
time-now = now
time-future = { $amount } from now
time-past = { $amount } ago
time-seconds = { $n ->
    [one] a second
   *[other] { $n } seconds
}
time-minutes = { $n ->
    [one] a minute
   *[other] { $n } minutes
}
time-hours = { $n ->
    [one] an hour
   *[other] { $n } hours
}
time-days = { $n ->
    [one] 1 day
   *[other] { $n } days
}
time-day-hours = { $n ->
    [one] 1 hour
   *[other] { $n } hours
}
time-days-and-hours = { $days }, { $hours }

## Dates: `$month` is one of the month names below.
date-format = { $month } { $day }, { $year }, { $time } UTC
month-1 = January
month-2 = February
month-3 = March
month-4 = April
month-5 = May
month-6 = June
month-7 = July
month-8 = August
month-9 = September
month-10 = October
month-11 = November
month-12 = December
