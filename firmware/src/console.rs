//! The serial console: the lines a person types into a device over USB to give it the MQTT
//! login the agent issued for it (the agent shows the password once, when the household adds
//! the device; the user name is the device id).
//!
//! * `login PASSWORD`: keep this password and use it from the next connection on;
//! * `logout`: forget the kept password (the build-time login, if any, applies again).
//!
//! Bytes come in one at a time ([`LineReader::push`]); a line ends at CR or LF, backspace
//! (BS or DEL) takes back a byte, and a line longer than [`LINE_MAX`] is refused whole rather
//! than cut, so a password is never kept truncated.

use crate::persist::Login;

/// The longest line read, in bytes (`login ` and a 64-byte password fit).
pub const LINE_MAX: usize = 80;

/// What a console line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleCommand {
    /// Keep this login.
    Login(Login),
    /// Forget the kept login.
    Logout,
}

/// Why a console line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a command this device knows.
    Unknown,
    /// `login` without a usable password.
    BadPassword,
    /// Longer than [`LINE_MAX`].
    TooLong,
}

impl Refusal {
    /// What to print on the console.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Unknown => "type: login PASSWORD, or logout",
            Refusal::BadPassword => "password: 1 to 64 visible characters",
            Refusal::TooLong => "line too long",
        }
    }
}

/// A console line's command; `Ok(None)` for an empty line. Bytes, not text: the commands and
/// passwords are ASCII, and UTF-8 checks would only cost flash.
pub fn parse(line: &[u8]) -> Result<Option<ConsoleCommand>, Refusal> {
    let line = line.trim_ascii();
    let (word, rest) = match line.iter().position(|&b| b == b' ') {
        Some(at) => (&line[..at], line[at..].trim_ascii()),
        None => (line, &b""[..]),
    };
    match word {
        b"" => Ok(None),
        b"login" => Login::new(rest)
            .map(|login| Some(ConsoleCommand::Login(login)))
            .ok_or(Refusal::BadPassword),
        b"logout" if rest.is_empty() => Ok(Some(ConsoleCommand::Logout)),
        _ => Err(Refusal::Unknown),
    }
}

/// Gathers console bytes into lines.
#[derive(Debug)]
pub struct LineReader {
    buffer: [u8; LINE_MAX],
    len: usize,
    too_long: bool,
}

impl Default for LineReader {
    fn default() -> Self {
        Self::new()
    }
}

impl LineReader {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buffer: [0; LINE_MAX],
            len: 0,
            too_long: false,
        }
    }

    /// Takes one byte; at the end of a non-empty line, what it asks for.
    pub fn push(&mut self, byte: u8) -> Option<Result<ConsoleCommand, Refusal>> {
        match byte {
            b'\r' | b'\n' => {
                let too_long = core::mem::replace(&mut self.too_long, false);
                let len = core::mem::replace(&mut self.len, 0);
                if too_long {
                    return Some(Err(Refusal::TooLong));
                }
                parse(&self.buffer[..len]).transpose()
            }
            0x08 | 0x7F => {
                self.len = self.len.saturating_sub(1);
                None
            }
            _ if self.len < LINE_MAX => {
                self.buffer[self.len] = byte;
                self.len += 1;
                None
            }
            _ => {
                self.too_long = true;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn lines(input: &[u8]) -> Vec<Result<ConsoleCommand, Refusal>> {
        let mut reader = LineReader::new();
        input.iter().filter_map(|&b| reader.push(b)).collect()
    }

    #[test]
    fn login_and_logout() {
        let password = "Jd0_Qx-7a9vK2mW4pL8nB3cR6tY1uE5iO0sD2fG4hJ6";
        let typed = std::format!("login {password}\r\n\nlogout\r");
        let got = lines(typed.as_bytes());
        assert_eq!(got.len(), 2, "{got:?}");
        match got[0] {
            Ok(ConsoleCommand::Login(login)) => assert_eq!(login.password(), password.as_bytes()),
            ref other => panic!("{other:?}"),
        }
        assert_eq!(got[1], Ok(ConsoleCommand::Logout));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(b"login"), Err(Refusal::BadPassword));
        assert_eq!(parse(b"login two words"), Err(Refusal::BadPassword));
        assert_eq!(parse(b"logout now"), Err(Refusal::Unknown));
        assert_eq!(parse(b"reboot"), Err(Refusal::Unknown));
        assert_eq!(parse(b"   "), Ok(None));
        assert_eq!(lines(b"\xff\xfe\n"), [Err(Refusal::Unknown)]);
    }

    #[test]
    fn backspace_takes_back_a_byte() {
        let got = lines(b"login pw1x\x08\x7f2\n");
        match got[..] {
            [Ok(ConsoleCommand::Login(login))] => assert_eq!(login.password(), b"pw2"),
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_long_line_is_refused_whole_and_the_next_one_read() {
        let mut typed = Vec::from(&b"login "[..]);
        typed.extend(std::iter::repeat_n(b'a', LINE_MAX));
        typed.extend(b"\nlogout\n");
        assert_eq!(
            lines(&typed),
            [Err(Refusal::TooLong), Ok(ConsoleCommand::Logout)]
        );
    }
}
