//! Datagrams as text, for the failure messages of the differential tests: every
//! segment header decoded, one bracket each.

use std::fmt::Write as _;

use kcp_core::segment::{HEADER_LEN, Header};

/// Decodes every segment header of a datagram, one line each.
pub(crate) fn describe(datagram: &[u8]) -> String {
    let mut out = format!("{} bytes:", datagram.len());
    let mut rest = datagram;
    while rest.len() >= HEADER_LEN {
        match Header::parse(rest) {
            Ok((h, payload)) => {
                let _ = write!(
                    out,
                    " [{:?} frg={} wnd={} ts={} sn={} una={} len={}]",
                    h.cmd,
                    h.frg,
                    h.wnd,
                    h.ts.as_millis(),
                    h.sn.get(),
                    h.una.get(),
                    h.len
                );
                rest = &rest[HEADER_LEN + payload.len()..];
            }
            Err(e) => {
                let _ = write!(out, " [undecodable: {e}]");
                break;
            }
        }
    }
    out
}

/// Every datagram of a list on its own line, or "(nothing)".
pub(crate) fn describe_all(datagrams: &[Vec<u8>]) -> String {
    if datagrams.is_empty() {
        return "\n      (nothing)".into();
    }
    datagrams
        .iter()
        .map(|d| format!("\n      {}", describe(d)))
        .collect()
}
