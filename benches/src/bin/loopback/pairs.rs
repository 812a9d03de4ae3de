//! Mixed pairs: one implementation's client against another's server on the paced
//! scenario (one client, 100 B at 1000/s), to tell which end a latency difference
//! comes from. Only implementations that speak the same wire pair up: kcp-net and
//! kcp-tokio, in raw KCP.
//!
//! ```sh
//! loopback --pair kcp-net:kcp-net,kcp-tokio:kcp-net,kcp-net:kcp-tokio,kcp-tokio:kcp-tokio
//! ```

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use anyhow::bail;
use clap::ValueEnum as _;

use crate::scenarios::{self, Latencies};
use crate::{Impl, Plan, median, ms};

/// A client implementation and the server it talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pair {
    client: Impl,
    server: Impl,
}

impl FromStr for Pair {
    type Err = anyhow::Error;

    /// `CLIENT:SERVER`, each an implementation's name as `serve` takes it.
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let Some((client, server)) = s.split_once(':') else {
            bail!("a pair is CLIENT:SERVER, e.g. kcp-tokio:kcp-net (got {s:?})");
        };
        let parse = |name: &str| {
            Impl::from_str(name, false)
                .map_err(|_| anyhow::anyhow!("unknown implementation {name:?}"))
        };
        let pair = Self {
            client: parse(client)?,
            server: parse(server)?,
        };
        let raw_kcp = |w| matches!(w, Impl::KcpNet | Impl::KcpTokio);
        if pair.client != pair.server && !(raw_kcp(pair.client) && raw_kcp(pair.server)) {
            bail!(
                "{s}: only kcp-net and kcp-tokio speak the same wire (raw KCP); \
                 other implementations pair only with themselves"
            );
        }
        Ok(pair)
    }
}

/// Runs every pair `plan.latency_rounds` times, interleaved (each round runs every
/// pair once), and reports each pair's median p50, p99 and server CPU.
pub(crate) fn paced(plan: &Plan, pairs: &[Pair]) -> anyhow::Result<String> {
    let mut rounds: Vec<Vec<Latencies>> = vec![Vec::new(); pairs.len()];
    for round in 0..plan.latency_rounds {
        for (pair, results) in pairs.iter().zip(&mut rounds) {
            eprintln!(
                "one client, 1000/s: {} client, {} server (round {})",
                pair.client.name(),
                pair.server.name(),
                round + 1
            );
            results.push(scenarios::one_client_of(
                pair.client,
                pair.server,
                100,
                Some(1_000.0),
                plan.duration,
            )?);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Mixed pairs, one client, 100 B messages at 1000/s (medians of {} rounds)\n",
        plan.latency_rounds
    );
    let _ = writeln!(
        out,
        "| client | server | p50 ms | p99 ms | server CPU | failed rounds | p50 of the rounds |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for (pair, results) in pairs.iter().zip(&rounds) {
        let quantile = |f: fn(&Latencies) -> Duration| {
            Duration::from_secs_f64(median(results.iter().map(|l| f(l).as_secs_f64()).collect()))
        };
        let p50s: Vec<String> = results.iter().map(|l| ms(l.p50)).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1}% | {} | {} |",
            pair.client.name(),
            pair.server.name(),
            ms(quantile(|l| l.p50)),
            ms(quantile(|l| l.p99)),
            100.0 * median(results.iter().map(|l| l.server_cpu).collect()),
            results.iter().filter(|l| l.failed_clients > 0).count(),
            p50s.join(", ")
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_and_only_raw_kcp_mixes() {
        let pair: Pair = "kcp-tokio:kcp-net".parse().unwrap();
        assert_eq!((pair.client, pair.server), (Impl::KcpTokio, Impl::KcpNet));
        assert!("quinn:quinn".parse::<Pair>().is_ok());
        assert!("kcp-net-secure:kcp-net".parse::<Pair>().is_err());
        assert!("tcp:udp".parse::<Pair>().is_err());
        assert!("kcp-net".parse::<Pair>().is_err());
        assert!("kcp-net:nope".parse::<Pair>().is_err());
    }
}
