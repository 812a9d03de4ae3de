//! The server's TOML config file: its keys are the flags' names, and a flag given on
//! the command line overrides its key.

use std::path::Path;

use anyhow::Context as _;
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::{Table, Value};

/// The settings of the file at `path` under the flags of `matches`: a key of the file
/// counts unless its flag was given on the command line; what neither gives keeps its
/// default. `from_flags` is what the command line gave (defaults included).
///
/// # Errors
/// The file cannot be read, is not TOML, has an unknown key or a bad value (each
/// named with the file and, where TOML says, the line).
pub(super) fn load<T>(path: &Path, from_flags: &T, matches: &ArgMatches) -> anyhow::Result<T>
where
    T: Serialize + DeserializeOwned,
{
    let context = || format!("config file {}", path.display());
    let text = std::fs::read_to_string(path).with_context(context)?;
    // The file alone first: unknown keys and bad values, with their lines.
    toml::from_str::<T>(&text).with_context(context)?;
    let file: Table = toml::from_str(&text).with_context(context)?;
    let mut merged = Table::try_from(from_flags).context("the command line's settings")?;
    overlay(&mut merged, file, matches);
    merged.try_into().with_context(context)
}

/// Puts `file`'s keys into `into`, tables key by key, except the keys whose flag was
/// given on the command line.
fn overlay(into: &mut Table, file: Table, matches: &ArgMatches) {
    for (key, value) in file {
        match (into.get_mut(&key), value) {
            (Some(Value::Table(inner)), Value::Table(value)) => overlay(inner, value, matches),
            (_, _) if given(matches, &key) => {}
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// Whether the flag with this id (the key's name) was given on the command line.
fn given(matches: &ArgMatches, id: &str) -> bool {
    matches.try_contains_id(id).unwrap_or(false)
        && matches.value_source(id) == Some(ValueSource::CommandLine)
}
