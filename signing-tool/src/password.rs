//! Passwords for secret keys.
//!
//! On a terminal they are asked without echo. When standard input is not a terminal they are
//! read from it, one per line, as minisign does, so a script can pipe them in: `keygen` reads
//! two lines (the password and its confirmation), `sign` one.

use std::io::{self, BufRead, IsTerminal, Read};

use zeroize::Zeroizing;

use crate::error::Error;

/// The longest password accepted, minisign's limit.
pub const MAX_PASSWORD_BYTES: usize = 1023;

/// Asks for the password of an existing secret key.
pub fn ask() -> Result<Zeroizing<String>, Error> {
    if io::stdin().is_terminal() {
        prompt("Password: ")
    } else {
        read_line(&mut io::stdin().lock())
    }
}

/// Asks for a new key's password twice; they must match and not be empty.
pub fn ask_new() -> Result<Zeroizing<String>, Error> {
    let (first, second) = if io::stdin().is_terminal() {
        (prompt("Password: ")?, prompt("Password (one more time): ")?)
    } else {
        let mut stdin = io::stdin().lock();
        (read_line(&mut stdin)?, read_line(&mut stdin)?)
    };
    confirm(first, second)
}

fn prompt(text: &str) -> Result<Zeroizing<String>, Error> {
    let password = Zeroizing::new(rpassword::prompt_password(text).map_err(Error::Password)?);
    check_length(password.len())?;
    Ok(password)
}

fn confirm(first: Zeroizing<String>, second: Zeroizing<String>) -> Result<Zeroizing<String>, Error> {
    if first != second {
        return Err(Error::PasswordMismatch);
    }
    if first.is_empty() {
        return Err(Error::EmptyPassword);
    }
    Ok(first)
}

/// Reads one line without its line end, reading no further than the limit allows.
fn read_line(reader: &mut impl BufRead) -> Result<Zeroizing<String>, Error> {
    let mut line = Zeroizing::new(Vec::new());
    // Room for the longest password and a "\r\n": anything longer is refused below.
    let limit = MAX_PASSWORD_BYTES as u64 + 3;
    Read::take(&mut *reader, limit).read_until(b'\n', &mut line).map_err(Error::Password)?;
    if line.is_empty() {
        return Err(Error::Password(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "standard input ended before the password",
        )));
    }
    let mut len = line.len();
    for end in [b'\n', b'\r'] {
        if len > 0 && line[len - 1] == end {
            len -= 1;
        }
    }
    check_length(len)?;
    let text = std::str::from_utf8(&line[..len])
        .map_err(|_| Error::Password(io::Error::new(io::ErrorKind::InvalidData, "the password is not UTF-8")))?;
    Ok(Zeroizing::new(text.to_owned()))
}

fn check_length(len: usize) -> Result<(), Error> {
    if len > MAX_PASSWORD_BYTES {
        let message = format!("the password is longer than {MAX_PASSWORD_BYTES} bytes");
        return Err(Error::Password(io::Error::new(io::ErrorKind::InvalidData, message)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_two(input: &[u8]) -> Result<Zeroizing<String>, Error> {
        let mut reader = input;
        let first = read_line(&mut reader)?;
        let second = read_line(&mut reader)?;
        confirm(first, second)
    }

    #[test]
    fn two_matching_lines_give_the_password() {
        assert_eq!(read_two(b"s3cret\ns3cret\n").unwrap().as_str(), "s3cret");
        assert_eq!(read_two(b"s3cret\r\ns3cret").unwrap().as_str(), "s3cret");
    }

    #[test]
    fn mismatched_empty_or_missing_confirmation_is_refused() {
        assert!(matches!(read_two(b"one\ntwo\n"), Err(Error::PasswordMismatch)));
        assert!(matches!(read_two(b"\n\n"), Err(Error::EmptyPassword)));
        assert!(matches!(read_two(b"one\n"), Err(Error::Password(_))));
    }

    #[test]
    fn overlong_password_is_refused() {
        let long = format!("{}\n", "x".repeat(MAX_PASSWORD_BYTES + 1));
        assert!(matches!(read_line(&mut long.as_bytes()), Err(Error::Password(_))));
        let longest = format!("{}\n", "x".repeat(MAX_PASSWORD_BYTES));
        assert_eq!(read_line(&mut longest.as_bytes()).unwrap().len(), MAX_PASSWORD_BYTES);
    }
}
