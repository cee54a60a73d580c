//! SMTP delivery: placeholder until the SMTP client lands.

use anyhow::{bail, Result};

use crate::app::{Exit, Output};
use crate::campaign::Prepared;
use crate::config::{Config, Smtp};
use crate::problem::Problem;
use crate::transport::{Outbox, Transport};

pub fn describe(s: &Smtp) -> String {
    format!("{}:{} ({})", s.host, s.port, s.security_name())
}

pub fn reserved_address_problems(_p: &Prepared, _only: Option<&[usize]>) -> Vec<Problem> {
    Vec::new()
}

pub fn connect(_s: &Smtp, _out: &Output) -> Result<Outbox> {
    bail!("SMTP is not built yet")
}

pub fn test_send(_c: &Config, _out: &Output, _to: &str, _r: Option<&str>) -> Result<Exit> {
    bail!("SMTP is not built yet")
}

pub fn check_smtp(_c: &Config, _out: &Output) -> Result<Exit> {
    bail!("SMTP is not built yet")
}

#[allow(dead_code)]
fn _unused(_t: &dyn Transport) {}
