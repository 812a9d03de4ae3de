//! What a line typed at the interactive client means.

use std::fmt;

/// One line of input, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Plain text: say it in the current room.
    Say(String),
    /// `/me ACTION`
    Me(String),
    /// `/join ROOM`: join and make it the current room.
    Join(String),
    /// `/leave [ROOM]`: leave a room (default: the current one).
    Leave(Option<String>),
    /// `/nick NICK`
    Nick(String),
    /// `/who [ROOM]`: list the users of a room (default: the current one).
    Who(Option<String>),
    /// `/rooms`
    Rooms,
    /// `/ping`: measure the round trip to the server.
    Ping,
    /// `/quit [REASON]`
    Quit(String),
    /// `/help`
    Help,
    /// A blank line.
    Nothing,
}

/// A line that starts like a command but is not a valid one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// `/frobnicate`
    #[error("unknown command /{0} (try /help)")]
    Unknown(String),
    /// A command without its argument.
    #[error("usage: {0}")]
    Usage(&'static str),
}

/// The help text the client prints for `/help`.
pub const HELP: &str = "\
commands:
  text            say text in the current room
  /me ACTION      act (\"* alice waves\")
  /join ROOM      join ROOM (created if new) and make it current
  /leave [ROOM]   leave ROOM (default: the current room)
  /nick NICK      change your nick
  /who [ROOM]     list the users of ROOM (default: the current room)
  /rooms          list rooms
  /ping           measure the round trip to the server
  /quit [REASON]  leave and exit
  /help           this text
  //text          say text that starts with /";

/// Parses one line (without its newline).
///
/// # Errors
/// [`InputError`] for an unknown command or a missing argument.
pub fn parse_line(line: &str) -> Result<Input, InputError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(Input::Nothing);
    }
    if let Some(escaped) = line.strip_prefix("//") {
        return Ok(Input::Say(format!("/{escaped}")));
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Input::Say(line.to_owned()));
    };
    let (name, rest) = command
        .split_once(char::is_whitespace)
        .unwrap_or((command, ""));
    let rest = rest.trim();
    let arg = (!rest.is_empty()).then(|| rest.trim_start_matches('#').to_owned());
    match name {
        "me" => arg
            .map(|_| Input::Me(rest.to_owned()))
            .ok_or(InputError::Usage("/me ACTION")),
        "join" | "j" => arg.map(Input::Join).ok_or(InputError::Usage("/join ROOM")),
        "leave" | "part" => Ok(Input::Leave(arg)),
        "nick" => arg.map(Input::Nick).ok_or(InputError::Usage("/nick NICK")),
        "who" | "users" => Ok(Input::Who(arg)),
        "rooms" | "list" => Ok(Input::Rooms),
        "ping" => Ok(Input::Ping),
        "quit" | "exit" => Ok(Input::Quit(rest.to_owned())),
        "help" | "?" => Ok(Input::Help),
        other => Err(InputError::Unknown(other.to_owned())),
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_said_and_slashes_can_be_escaped() {
        assert_eq!(
            parse_line("hello there"),
            Ok(Input::Say("hello there".into()))
        );
        assert_eq!(parse_line("//etc"), Ok(Input::Say("/etc".into())));
        assert_eq!(parse_line("  \r\n"), Ok(Input::Nothing));
        assert_eq!(parse_line("hi\r"), Ok(Input::Say("hi".into())));
    }

    #[test]
    fn commands_parse_with_and_without_arguments() {
        assert_eq!(parse_line("/join #rust"), Ok(Input::Join("rust".into())));
        assert_eq!(parse_line("/join"), Err(InputError::Usage("/join ROOM")));
        assert_eq!(parse_line("/leave"), Ok(Input::Leave(None)));
        assert_eq!(
            parse_line("/leave kcp"),
            Ok(Input::Leave(Some("kcp".into())))
        );
        assert_eq!(
            parse_line("/me waves  hello"),
            Ok(Input::Me("waves  hello".into()))
        );
        assert_eq!(parse_line("/nick bob"), Ok(Input::Nick("bob".into())));
        assert_eq!(parse_line("/who"), Ok(Input::Who(None)));
        assert_eq!(parse_line("/rooms"), Ok(Input::Rooms));
        assert_eq!(
            parse_line("/quit gone fishing"),
            Ok(Input::Quit("gone fishing".into()))
        );
        assert_eq!(parse_line("/quit"), Ok(Input::Quit(String::new())));
        assert_eq!(parse_line("/help"), Ok(Input::Help));
        assert_eq!(parse_line("/ping"), Ok(Input::Ping));
        assert_eq!(
            parse_line("/dance"),
            Err(InputError::Unknown("dance".into()))
        );
    }
}
