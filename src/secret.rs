//! Passwords for the mail servers: from a command (`password_command`), an environment variable
//! (`password_env`), or a prompt on the terminal, in that order.
//!
//! The secret is returned to the caller and nothing else: it is never printed, logged, stored or
//! put into an error, and the config file never holds it. Errors name the config keys to set.

use std::io::IsTerminal as _;

use anyhow::{bail, Context as _, Result};

/// Where one server's password comes from, as configured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    /// The config section that holds the keys, for messages: "transport.smtp", "receipts.imap".
    pub section: &'a str,
    pub user: &'a str,
    pub host: &'a str,
    pub password_env: &'a str,
    pub password_command: Option<&'a str>,
}

/// Reads the password (or token) for `source.user`.
pub(crate) fn read(source: Source<'_>) -> Result<String> {
    let Source {
        section,
        user,
        host,
        password_env,
        password_command,
    } = source;
    if let Some(cmd) = password_command {
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {section}.password_command"))?;
        if !output.status.success() {
            bail!(
                "{section}.password_command failed ({}); no password, nothing was done",
                output.status
            );
        }
        let text = String::from_utf8(output.stdout).with_context(|| {
            format!("{section}.password_command printed something that is not UTF-8")
        })?;
        let first = text.lines().next().unwrap_or("").to_string();
        if first.is_empty() {
            bail!("{section}.password_command printed no password");
        }
        return Ok(first);
    }
    if let Ok(value) = std::env::var(password_env) {
        if !value.is_empty() {
            return Ok(value);
        }
    }
    if std::io::stdin().is_terminal() {
        let value = rpassword::prompt_password(format!("Password for {user} at {host}: "))
            .context("cannot read the password")?;
        return Ok(value);
    }
    bail!(
        "no password for {user}: set the environment variable {password_env}, set {section}.password_command, or run rundbrev on a terminal to be asked"
    )
}
