//! `users`: create, list and show users in a host's storage.

use crate::UsersCommand;

/// `users create|list|show`.
pub fn run(database: &str, command: UsersCommand) -> anyhow::Result<()> {
    let store = host_harness::config::open_store(database)?;
    match command {
        UsersCommand::Create {
            username,
            email,
            name,
            inactive,
            password_stdin,
            locale,
        } => {
            if username.trim().is_empty() || username.chars().any(char::is_whitespace) {
                anyhow::bail!("username must be non-empty and without spaces");
            }
            if !locale.is_empty() && !host_harness::i18n::valid_tag(&locale) {
                anyhow::bail!("'{locale}' is not a language tag (such as de or fr-CH)");
            }
            if !email.is_empty() && email.parse::<lettre::Address>().is_err() {
                anyhow::bail!("'{email}' is not a valid email address");
            }
            let password_hash = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                let pw = line.trim_end_matches(['\r', '\n']);
                anyhow::ensure!(!pw.is_empty(), "empty password on standard input");
                Some(host_harness::stages::builtin::hash_password(pw)?)
            } else {
                None
            };
            let user = store.create_user(&host_harness::storage::NewUser {
                username,
                name,
                email,
                is_active: !inactive,
                password_hash,
                locale,
            })?;
            println!("{}", serde_json::to_string(&user)?);
        }
        UsersCommand::List => {
            for u in store.users()? {
                println!("{}", serde_json::to_string(&u)?);
            }
        }
        UsersCommand::Show { identifier } => match store.find_user(&identifier)? {
            Some(u) => println!("{}", serde_json::to_string_pretty(&u)?),
            None => anyhow::bail!("no user '{identifier}'"),
        },
    }
    Ok(())
}
