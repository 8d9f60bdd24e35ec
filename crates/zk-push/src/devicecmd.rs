//! Command results, `POST /iclock/devicecmd` (push.md §9). Depends on [`crate::text`] and [`crate::attlog`]
//! (for [`LineError`]).

use crate::attlog::LineError;

/// The result of one command, as the device reported it (push.md §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    /// `ID=`: the command id the server sent.
    pub id: String,
    /// `Return=`: 0 success, negative error (see [`describe_return_code`]).
    pub return_code: i64,
    /// `CMD=`: the command word as echoed.
    pub cmd: String,
    /// Every other key (INFO lines, AttlogCount, …) as sent.
    pub fields: Vec<(String, String)>,
    /// `Content=` of Shell/GetFile results.
    pub content: Option<Vec<u8>>,
}

/// Parse a devicecmd body. Several results per body; INFO/Shell/GetFile multi-line forms; one bad line never
/// loses the others.
pub fn parse_command_results(body: &[u8]) -> Vec<Result<CommandResult, LineError>> {
    let _ = body;
    todo!()
}

/// Human meaning of a `Return=` code (push.md §9 table), e.g. -10 -> "PIN does not exist".
pub fn describe_return_code(code: i64) -> &'static str {
    let _ = code;
    todo!()
}
