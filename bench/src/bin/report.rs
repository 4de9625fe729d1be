//! Turns the raw measurements of `bench/run.sh` into the markdown tables of
//! `bench/results.md` (printed on stdout) and a bar chart (SVG).
//!
//! `report RAW.tsv CHART.svg [CRITERION_DIR]`
//!
//! RAW.tsv lines: `case subject round rate p50_us p99_us cpu_us_per_op`
//! (tab separated, `-` for a missing value); the hostile rows go on with
//! `max_us failures probes rss_kib busy closes timeout_us missed`, the
//! permessage-deflate rows as [`pmd_report`] says, the `fanout_mem` rows
//! with `idle_per_conn last_per_conn goal_ratio stats_last_per_conn` after
//! `queued_per_conn subscribers - -`. Every ratio is
//! computed per round, from runs made side by side (A, B, A, B…), and the
//! median over the rounds is reported.
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use plotters::prelude::*;

const US: &str = "pollserve";

struct Row {
    case: String,
    subject: String,
    round: u32,
    rate: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    cpu: Option<f64>,
    /// Columns after the seventh (the hostile rows' `Hostile` fields).
    extra: Vec<Option<f64>>,
}

/// Columns of `Row::extra` in the hostile rows (`hostile_quiet`,
/// `hostile_attacked`), as bench/run.sh writes them.
#[derive(Clone, Copy)]
enum Hostile {
    Max,
    Failures,
    Probes,
    RssKib,
    Busy,
    Closes,
    TimeoutUs,
    Missed,
}

impl Row {
    fn hostile(&self, field: Hostile) -> Option<f64> {
        self.extra.get(field as usize).copied().flatten()
    }

    /// The probe's p99 is the timeout: more than 1 % of the probes failed,
    /// so the real p99 is at least this (a lower bound, not a measurement).
    fn p99_capped(&self) -> bool {
        self.p99
            .zip(self.hostile(Hostile::TimeoutUs))
            .is_some_and(|(p, t)| p >= t)
    }
}

fn num(s: &str) -> Option<f64> {
    s.parse().ok()
}

fn median(v: Vec<f64>) -> Option<f64> {
    quartiles(v).map(|q| q.1)
}

/// Lower quartile, median and upper quartile (linear interpolation between
/// closest ranks).
fn quartiles(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        let x = q * (v.len() - 1) as f64;
        let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (x - lo as f64)
    };
    Some((at(0.25), at(0.5), at(0.75)))
}

/// Description, unit and goals (peer, minimum or maximum ratio) of each case.
struct CaseInfo {
    id: Cow<'static, str>,
    title: Cow<'static, str>,
    unit: &'static str,
    /// (peer, goal on the throughput ratio pollserve ÷ peer, at least)
    goals: &'static [(&'static str, f64)],
    /// Peer for the "server CPU per message ≤ goal ×" goal.
    cpu_goal: Option<(&'static str, f64)>,
}

const CASES: &[CaseInfo] = &[
    CaseInfo {
        id: Cow::Borrowed("ws_1x20"),
        title: Cow::Borrowed("WS echo 1 conn × 20 B (latency)"),
        unit: "msg/s",
        goals: &[],
        cpu_goal: None,
    },
    CaseInfo {
        id: Cow::Borrowed("ws_100x20"),
        title: Cow::Borrowed("WS echo 100 conns × 20 B"),
        unit: "msg/s",
        goals: &[("fws_st", 1.0), ("tungstenite_st", 1.3)],
        cpu_goal: Some(("fws_st", 1.0)),
    },
    CaseInfo {
        id: Cow::Borrowed("ws_200x16k"),
        title: Cow::Borrowed("WS echo 200 conns × 16 KiB"),
        unit: "msg/s",
        goals: &[("fws_st", 1.0), ("tungstenite_st", 1.3)],
        cpu_goal: Some(("fws_st", 1.0)),
    },
    CaseInfo {
        id: Cow::Borrowed("ws_500x16k"),
        title: Cow::Borrowed("WS echo 500 conns × 16 KiB"),
        unit: "msg/s",
        goals: &[],
        cpu_goal: None,
    },
    CaseInfo {
        id: Cow::Borrowed("http_hello_ka"),
        title: Cow::Borrowed("HTTP hello, keep-alive, wrk 64 conns"),
        unit: "req/s",
        goals: &[("hyper_st", 1.0), ("tiny_http", 2.0)],
        cpu_goal: None,
    },
    CaseInfo {
        id: Cow::Borrowed("http_hello_close"),
        title: Cow::Borrowed("HTTP hello, Connection: close, wrk 64 conns"),
        unit: "req/s",
        goals: &[],
        cpu_goal: None,
    },
    CaseInfo {
        id: Cow::Borrowed("static_small"),
        title: Cow::Borrowed("Static 1 KiB file, keep-alive, wrk 64 conns"),
        unit: "req/s",
        goals: &[("nginx", 1.2)],
        cpu_goal: None,
    },
    CaseInfo {
        id: Cow::Borrowed("static_1m"),
        title: Cow::Borrowed("Static 1 MiB file, keep-alive, wrk 64 conns"),
        unit: "req/s",
        goals: &[("nginx", 1.0)],
        cpu_goal: None,
    },
    CaseInfo {
        id: Cow::Borrowed("lg_hello_ka"),
        title: Cow::Borrowed("HTTP hello, keep-alive, loadgen 64 conns"),
        unit: "req/s",
        goals: &[("hyper_st", 1.0), ("tiny_http", 2.0)],
        cpu_goal: None,
    },
    CaseInfo {
        id: Cow::Borrowed("lg_static_small"),
        title: Cow::Borrowed("Static 1 KiB file, keep-alive, loadgen 64 conns"),
        unit: "req/s",
        goals: &[("nginx", 1.2)],
        cpu_goal: None,
    },
    CaseInfo {
        id: Cow::Borrowed("lg_static_1m"),
        title: Cow::Borrowed("Static 1 MiB file, keep-alive, loadgen 64 conns"),
        unit: "req/s",
        goals: &[("nginx", 1.0)],
        cpu_goal: None,
    },
    CaseInfo {
        id: Cow::Borrowed("tls_static_small"),
        title: Cow::Borrowed("HTTPS static 1 KiB file, keep-alive, TLS 1.3 ECDSA, loadgen 64 conns"),
        unit: "req/s",
        goals: &[("nginx", 1.2)],
        cpu_goal: None,
    },
    CaseInfo {
        id: Cow::Borrowed("tls_close_ecdsa"),
        title: Cow::Borrowed("HTTPS new connection + full handshake (ECDSA P-256) + 1 KiB file, Connection: close, loadgen 64 conns"),
        unit: "req/s",
        goals: &[("nginx", 1.0)],
        cpu_goal: None,
    },
    CaseInfo {
        id: Cow::Borrowed("tls_close_rsa"),
        title: Cow::Borrowed("HTTPS new connection + full handshake (RSA-2048) + 1 KiB file, Connection: close, loadgen 64 conns"),
        unit: "req/s",
        goals: &[("nginx", 1.0)],
        cpu_goal: None,
    },
    CaseInfo {
        id: Cow::Borrowed("tls_static_1m"),
        title: Cow::Borrowed("HTTPS static 1 MiB file, keep-alive, TLS 1.3 ECDSA, loadgen 64 conns"),
        unit: "req/s",
        goals: &[("nginx", 1.0)],
        cpu_goal: None,
    },
    CaseInfo {
        id: Cow::Borrowed("wss_100x20"),
        title: Cow::Borrowed("WSS echo 100 conns × 20 B (TLS 1.3; peers behind tokio-rustls)"),
        unit: "msg/s",
        goals: &[("fws_st", 1.0), ("tungstenite_st", 1.0)],
        cpu_goal: None,
    },
];

/// Fan-out goals (issue 15): deliveries per second at least these
/// multiples of the peers' (single-thread runtimes).
const FANOUT_WS_GOALS: &[(&str, f64)] = &[("fws_st", 1.2), ("tungstenite_st", 2.0)];
const FANOUT_SSE_GOALS: &[(&str, f64)] = &[("hyper_st", 1.5)];
/// Goal on the fan-out memory row: the server's memory with a broadcast
/// queued for every subscriber at most this multiple of its idle memory
/// plus one copy of each queued message.
const FANOUT_MEM_GOAL: f64 = 1.2;

/// The fan-out cases present in the raw table, `fanout_{ws|sse}_SIZE_SUBS`
/// (bench/run.sh names them after the sizes and subscriber counts it ran:
/// the full matrix's 1,000 and 10,000, smoke's 50), WebSocket first, then
/// by subscribers and size.
fn fanout_cases<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<CaseInfo> {
    let mut found: Vec<(bool, u64, u64, &str)> = ids
        .filter_map(|id| {
            let mut parts = id.strip_prefix("fanout_")?.split('_');
            let sse = match parts.next()? {
                "ws" => false,
                "sse" => true,
                _ => return None,
            };
            let size = parts.next()?.parse().ok()?;
            let subs = parts.next()?.parse().ok()?;
            parts.next().is_none().then_some((sse, subs, size, id))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|(sse, subs, size, id)| CaseInfo {
            id: Cow::Owned(id.to_owned()),
            title: Cow::Owned(format!(
                "{} fan-out: 1 publisher → {} subscribers, {} messages, window 8",
                if sse { "SSE" } else { "WebSocket" },
                thousands(subs),
                if size >= 1024 && size.is_multiple_of(1024) {
                    format!("{} KiB", size / 1024)
                } else {
                    format!("{size} B")
                }
            )),
            unit: "deliveries/s",
            goals: if sse {
                FANOUT_SSE_GOALS
            } else {
                FANOUT_WS_GOALS
            },
            cpu_goal: None,
        })
        .collect()
}

/// `n` with a comma between thousands (10,000).
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Goal on the memory of an idle TLS connection (after the handshake and
/// one echo), bytes.
const TLS_IDLE_GOAL: f64 = 8192.0;

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// `median (IQR low–high)` of per-round ratios.
fn fmt_q(q: Option<(f64, f64, f64)>) -> String {
    q.map_or("–".into(), |(lo, m, hi)| {
        format!("**{m:.2}** (IQR {lo:.2}–{hi:.2})")
    })
}

fn fmt_pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.0} %", v * 100.0))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: report RAW.tsv CHART.svg [CRITERION_DIR]");
        std::process::exit(2);
    }
    let raw = std::fs::read_to_string(&args[1]).expect("read raw results");
    let rows: Vec<Row> = raw
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Row {
                case: f[0].into(),
                subject: f[1].into(),
                round: f[2].parse().unwrap_or(0),
                rate: num(f[3]),
                p50: f.get(4).and_then(|s| num(s)),
                p99: f.get(5).and_then(|s| num(s)),
                cpu: f.get(6).and_then(|s| num(s)),
                extra: f.iter().skip(7).map(|s| num(s)).collect(),
            }
        })
        .collect();
    let mut out = String::new();
    let mut bars: Vec<(String, f64)> = Vec::new();
    let mut goals_md = String::new();
    // by case -> subject -> round -> row
    let mut by: BTreeMap<&str, BTreeMap<&str, BTreeMap<u32, &Row>>> = BTreeMap::new();
    for r in &rows {
        by.entry(&r.case)
            .or_default()
            .entry(&r.subject)
            .or_default()
            .insert(r.round, r);
    }
    // Ratio of one (case, subject)'s value to another's, per round: quartiles.
    let paired = |(case_a, subj_a): (&str, &str),
                  (case_b, subj_b): (&str, &str),
                  get: &dyn Fn(&Row) -> Option<f64>|
     -> Option<(f64, f64, f64)> {
        let a = by.get(case_a)?.get(subj_a)?;
        let b = by.get(case_b)?.get(subj_b)?;
        quartiles(
            a.iter()
                .filter_map(|(round, ra)| Some(get(ra)? / get(b.get(round)?)?))
                .filter(|x| x.is_finite())
                .collect(),
        )
    };
    // Ratio of pollserve's value to the peer's in the same case.
    let ratio_q = |case: &str,
                   peer: &str,
                   get: &dyn Fn(&Row) -> Option<f64>|
     -> Option<(f64, f64, f64)> { paired((case, US), (case, peer), get) };
    let ratio = |case: &str, peer: &str, get: &dyn Fn(&Row) -> Option<f64>| -> Option<f64> {
        ratio_q(case, peer, get).map(|q| q.1)
    };
    // Share of one core the server was busy: rate × CPU per operation.
    let busy = |r: &Row| Some(r.rate? * r.cpu? / 1e6);
    let med = |case: &str, subj: &str, get: &dyn Fn(&Row) -> Option<f64>| -> Option<f64> {
        median(
            by.get(case)?
                .get(subj)?
                .values()
                .filter_map(|r| get(r))
                .collect(),
        )
    };

    let fanout = fanout_cases(by.keys().copied());
    let cases = || CASES.iter().chain(&fanout);
    if cases().any(|c| by.contains_key(&*c.id)) {
        out.push_str("## Throughput, latency and CPU\n\n");
        out.push_str("Ratios are pollserve ÷ peer, computed per round from side-by-side runs, median over rounds. \
                      Throughput ratio > 1: pollserve is faster. Latency and CPU-per-operation ratios < 1: pollserve is better \
                      (an operation is a message echoed or a request answered; server CPU is the on-CPU time of all \
                      the server's threads from /proc/PID/task/*/schedstat, nginx counted with its worker). \
                      \"Busy\" is the share of one core the server used: near 100 % for a single-core server means the \
                      server was the bottleneck, well below means the load generator was. \
                      Absolute numbers are medians, for orientation only (noisy shared 2-core machine).\n\n");
    }
    for info in cases() {
        let (id, title): (&str, &str) = (&info.id, &info.title);
        let Some(subjects) = by.get(id) else {
            continue;
        };
        let _ = writeln!(out, "### {title}\n");
        let _ = writeln!(
            out,
            "| server | {} (median) | p50 µs | p99 µs | server CPU µs/op | busy | throughput ratio | p50 ratio | CPU/op ratio |",
            info.unit
        );
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let mut names: Vec<&str> = subjects.keys().copied().collect();
        names.sort_by_key(|n| (*n != US, n.to_string()));
        for s in names {
            let (tr, lr, cr) = if s == US {
                (
                    "1 (reference)".to_string(),
                    "–".to_string(),
                    "–".to_string(),
                )
            } else {
                let tr = ratio(id, s, &|r| r.rate);
                if let Some(t) = tr {
                    bars.push((format!("{} vs {}", id, s), t));
                }
                (
                    fmt_opt(tr, 2),
                    fmt_opt(ratio(id, s, &|r| r.p50), 2),
                    fmt_opt(ratio(id, s, &|r| r.cpu), 2),
                )
            };
            let _ = writeln!(
                out,
                "| {s} | {} | {} | {} | {} | {} | {tr} | {lr} | {cr} |",
                fmt_opt(med(id, s, &|r| r.rate), 0),
                fmt_opt(med(id, s, &|r| r.p50), 1),
                fmt_opt(med(id, s, &|r| r.p99), 1),
                fmt_opt(med(id, s, &|r| r.cpu), 2),
                fmt_pct(med(id, s, &busy)),
            );
        }
        out.push('\n');
        for (peer, goal) in info.goals {
            let got = ratio_q(id, peer, &|r| r.rate);
            // The server's CPU per operation beside it: the sharper figure
            // when the load generator saturates its core first.
            let cpu = ratio(id, peer, &|r| r.cpu)
                .map_or(String::new(), |c| format!("; server CPU per op {c:.2}×"));
            let (busy_us, busy_peer) = (med(id, US, &busy), med(id, peer, &busy));
            let load = format!("; busy {} / {}", fmt_pct(busy_us), fmt_pct(busy_peer));
            // When neither server used most of its core, the load generator
            // set the pace and the ratio says little about the servers.
            let client_bound = busy_us
                .zip(busy_peer)
                .is_some_and(|(a, b)| a < 0.8 && b < 0.8);
            let _ = writeln!(
                goals_md,
                "| {} throughput ≥ {goal}× {peer} | {}{cpu}{load} | {} |",
                title,
                fmt_q(got),
                if client_bound {
                    "load-generator bound: no verdict (both servers idle part of the time)"
                } else {
                    verdict(got.map(|g| g.1 >= *goal))
                }
            );
        }
        if let Some((peer, goal)) = info.cpu_goal {
            let got = ratio_q(id, peer, &|r| r.cpu);
            let _ = writeln!(
                goals_md,
                "| {} server CPU/msg ≤ {goal}× {peer} | {} | {} |",
                title,
                fmt_q(got),
                verdict(got.map(|g| g.1 <= goal))
            );
        }
    }

    // Idle memory.
    if let Some(subjects) = by.get("ws_idle") {
        out.push_str("## Memory per idle WebSocket connection\n\n");
        out.push_str("Server VmRSS after opening the connections (each did one 20-byte echo) minus VmRSS before, divided by the number of connections.\n\n");
        out.push_str("| server | connections | bytes per connection (median) |\n|---|---:|---:|\n");
        for (s, rounds) in subjects {
            let conns = rounds.values().next().and_then(|r| r.p50).unwrap_or(0.0);
            let _ = writeln!(
                out,
                "| {s} | {conns:.0} | {} |",
                fmt_opt(med("ws_idle", s, &|r| r.rate), 0)
            );
        }
        let ours = med("ws_idle", US, &|r| r.rate);
        if let Some(peer) = med("ws_idle", "tungstenite_st", &|r| r.rate) {
            let _ = writeln!(
                out,
                "\npollserve uses {} of tokio-tungstenite's memory per idle connection.\n",
                fmt_opt(ours.map(|o| o / peer), 3).to_string() + "×"
            );
        }
        let _ = writeln!(
            goals_md,
            "| idle WS memory ≤ 2048 B per connection | {} B | {} |",
            fmt_opt(ours, 0),
            verdict(ours.map(|o| o <= 2048.0))
        );
    }

    // Idle memory over TLS, beside plain.
    if let Some(subjects) = by.get("tls_idle") {
        out.push_str("## Memory per idle TLS connection\n\n");
        out.push_str(
            "As the idle WebSocket row, over TLS 1.3 (ECDSA P-256): server VmRSS after opening the \
             connections (each made a full handshake, its WebSocket upgrade and one 20-byte echo) \
             minus VmRSS before, divided by the number of connections. `pollserve_plain` is the same \
             server and load without TLS, measured in the same rounds; tungstenite_st is \
             tokio-tungstenite behind tokio-rustls. Fresh server processes for every run.\n\n",
        );
        out.push_str("| server | connections | bytes per connection (median) |\n|---|---:|---:|\n");
        let mut names: Vec<&str> = subjects.keys().copied().collect();
        names.sort_by_key(|n| (*n != US, n.to_string()));
        for s in names {
            let conns = subjects[s]
                .values()
                .next()
                .and_then(|r| r.p50)
                .unwrap_or(0.0);
            let _ = writeln!(
                out,
                "| {s} | {conns:.0} | {} |",
                fmt_opt(med("tls_idle", s, &|r| r.rate), 0)
            );
        }
        let ours = med("tls_idle", US, &|r| r.rate);
        let plain = med("tls_idle", "pollserve_plain", &|r| r.rate);
        if let (Some(t), Some(p)) = (ours, plain) {
            let _ = writeln!(
                out,
                "\nTLS adds {:.0} B per idle pollserve connection ({:.0} B over TLS, {:.0} B plain).\n",
                t - p,
                t,
                p
            );
        } else {
            out.push('\n');
        }
        let _ = writeln!(
            goals_md,
            "| idle TLS connection memory ≤ {TLS_IDLE_GOAL:.0} B (plain: {} B) | {} B | {} |",
            fmt_opt(plain, 0),
            fmt_opt(ours, 0),
            verdict(ours.map(|o| o <= TLS_IDLE_GOAL))
        );
    }

    // Fan-out memory: a broadcast queued for every subscriber.
    if let Some(subjects) = by.get("fanout_mem") {
        out.push_str("## Memory with a broadcast queued for every subscriber\n\n");
        out.push_str(
            "`loadgen fanout-memory` (see bench/README.md): WebSocket subscribers connect and stop reading, \
             in a network namespace whose TCP buffers are 4 KiB, so the kernel holds only a few KiB per \
             connection. Server VmRSS before the subscribers connect, with them idle, after the fill (messages \
             that fill the kernel's buffers, the rest waiting in the server) and after one more 4 KiB broadcast; \
             then every subscriber reads every message back, byte for byte. Per subscriber, medians over \
             fresh-server rounds. \"÷ (idle + copy)\" is the server's memory over its memory before the \
             subscribers, divided by (the idle subscribers' memory + one copy of each queued message): \
             1 means nothing is held per subscriber for the queued messages. \"server count\" is pollserve's \
             own `output_queued` growth per subscriber for the last broadcast (`Server::stats`).\n\n",
        );
        out.push_str(
            "| server | subscribers | idle B/subscriber | + fill + last broadcast B/subscriber | last broadcast B/subscriber | ÷ (idle + copy) | server count B/subscriber |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
        );
        let mut names: Vec<&str> = subjects.keys().copied().collect();
        names.sort_by_key(|n| (*n != US, n.to_string()));
        let col = |s: &str, k: usize| med("fanout_mem", s, &|r| r.extra.get(k).copied().flatten());
        for s in names {
            let conns = subjects[s]
                .values()
                .next()
                .and_then(|r| r.p50)
                .unwrap_or(0.0);
            let _ = writeln!(
                out,
                "| {s} | {conns:.0} | {} | {} | {} | {} | {} |",
                fmt_opt(col(s, 0), 0),
                fmt_opt(med("fanout_mem", s, &|r| r.rate), 0),
                fmt_opt(col(s, 1), 0),
                fmt_opt(col(s, 2), 3),
                fmt_opt(col(s, 3), 0),
            );
        }
        out.push('\n');
        let ours = col(US, 2);
        let _ = writeln!(
            goals_md,
            "| fan-out memory with a 4 KiB broadcast queued for every subscriber ≤ {FANOUT_MEM_GOAL}× (idle + one copy) | {} (last broadcast {} B per subscriber) | {} |",
            fmt_opt(ours, 3),
            fmt_opt(col(US, 1), 0),
            verdict(ours.map(|o| o <= FANOUT_MEM_GOAL))
        );
    }

    // Normal-client latency under hostile connections.
    const QUIET: &str = "hostile_quiet";
    const ATTACKED: &str = "hostile_attacked";
    if by.contains_key(QUIET) || by.contains_key(ATTACKED) {
        let rounds = |case: &str, s: &str| -> Vec<&Row> {
            by.get(case)
                .and_then(|c| c.get(s))
                .map(|r| r.values().copied().collect())
                .unwrap_or_default()
        };
        let sum = |case: &str, s: &str, f: Hostile| -> f64 {
            rounds(case, s).iter().filter_map(|r| r.hostile(f)).sum()
        };
        // Capped in most rounds: the median p99 is the timeout.
        let capped = |case: &str, s: &str| -> bool {
            let r = rounds(case, s);
            r.iter().filter(|r| r.p99_capped()).count() * 2 > r.len()
        };
        out.push_str("## Normal-client latency under hostile connections\n\n");
        out.push_str(
            "A probe client sends `GET /small.txt` (1 KiB) at a fixed rate, one request at a time on its own \
             keep-alive connection (a tick of the schedule that passes while the previous request is in flight \
             is skipped and counted as missed; latency counts from each request's start), with no attacker (quiet) and while hostile connections run (attacked: \
             slowloris, slow body, blank-line flood, idle WebSockets — idle keep-alive connections for nginx; \
             see bench/README.md). A fresh server for every run. Latencies in µs, medians over rounds; a failed \
             probe (no answer within the timeout) counts as the timeout, so a p99 marked ≥ is a lower bound \
             (more than 1 % failed). Failures and closes are totals over all rounds; RSS is the server's largest \
             VmRSS during the measured window (nginx: master + worker); busy is the server's share of one core.\n\n",
        );
        out.push_str("| server | condition | p50 µs | p99 µs | max µs | failures / probes | ticks missed | busy | RSS MiB | attack connections closed by the server |\n");
        out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let mut subjects: Vec<&str> = [QUIET, ATTACKED]
            .iter()
            .filter_map(|c| by.get(c))
            .flat_map(|c| c.keys().copied())
            .collect();
        subjects.sort_by_key(|n| (*n != US, n.to_string()));
        subjects.dedup();
        for s in &subjects {
            for (case, cond) in [(QUIET, "quiet"), (ATTACKED, "attacked")] {
                if rounds(case, s).is_empty() {
                    continue;
                }
                let p99 = fmt_opt(med(case, s, &|r| r.p99), 0);
                let _ = writeln!(
                    out,
                    "| {s} | {cond} | {} | {}{p99} | {} | {:.0} / {:.0} | {:.0} | {} | {} | {} |",
                    fmt_opt(med(case, s, &|r| r.p50), 0),
                    if capped(case, s) { "≥ " } else { "" },
                    fmt_opt(med(case, s, &|r| r.hostile(Hostile::Max)), 0),
                    sum(case, s, Hostile::Failures),
                    sum(case, s, Hostile::Probes),
                    sum(case, s, Hostile::Missed),
                    fmt_pct(med(case, s, &|r| r.hostile(Hostile::Busy))),
                    fmt_opt(
                        med(case, s, &|r| r.hostile(Hostile::RssKib)).map(|k| k / 1024.0),
                        1
                    ),
                    if case == QUIET {
                        "–".to_string()
                    } else {
                        format!("{:.0}", sum(case, s, Hostile::Closes))
                    },
                );
            }
        }
        out.push('\n');
        let p99 = |r: &Row| r.p99;
        out.push_str("| p99 ratio (median of per-round ratios) | value |\n|---|---|\n");
        for s in &subjects {
            let _ = writeln!(
                out,
                "| {s}: attacked ÷ quiet | {} |",
                fmt_q(paired((ATTACKED, s), (QUIET, s), &p99))
            );
        }
        for s in subjects.iter().filter(|s| **s != US) {
            let _ = writeln!(
                out,
                "| attacked: pollserve ÷ {s} | {} |",
                fmt_q(paired((ATTACKED, US), (ATTACKED, s), &p99))
            );
        }
        out.push('\n');
        let goals = [
            (
                "pollserve p99 with hostile connections ≤ 2× its quiet p99",
                (ATTACKED, US),
                (QUIET, US),
                2.0,
            ),
            (
                "pollserve p99 with hostile connections ≤ nginx's",
                (ATTACKED, US),
                (ATTACKED, "nginx"),
                1.0,
            ),
        ];
        for (title, a, b, goal) in goals {
            let got = paired(a, b, &p99);
            let verdict_text =
                bounded_verdict(got.map(|q| q.1), goal, capped(a.0, a.1), capped(b.0, b.1));
            let _ = writeln!(goals_md, "| {title} | {} | {verdict_text} |", fmt_q(got));
        }
    }

    pmd_report(&raw, &mut out, &mut goals_md, &mut bars);

    // Criterion micro-benchmarks.
    if let Some(dir) = args.get(3) {
        let est = |id: &str| -> Option<f64> {
            let text = std::fs::read_to_string(format!("{dir}/{id}/new/estimates.json")).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            v["median"]["point_estimate"].as_f64()
        };
        let micro: &[(&str, &str, f64)] = &[
            ("mask/apply_mask_16384", "apply_mask, 16 KiB", 16384.0),
            ("mask/memcpy_16384", "plain copy, 16 KiB", 16384.0),
            ("mask/apply_mask_1048576", "apply_mask, 1 MiB", 1048576.0),
            ("mask/memcpy_1048576", "plain copy, 1 MiB", 1048576.0),
            (
                "ws_feed/binary_20B_x1000",
                "WsSession::feed, 1000 × 20 B binary frames",
                26000.0,
            ),
            (
                "ws_feed/binary_16KiB",
                "WsSession::feed, one 16 KiB binary frame",
                16392.0,
            ),
            (
                "ws_feed/text_64KiB",
                "WsSession::feed, one 64 KiB text frame (UTF-8 checked)",
                65550.0,
            ),
            (
                "ws_feed/binary_64KiB",
                "WsSession::feed, one 64 KiB binary frame",
                65550.0,
            ),
            (
                "utf8/simdutf8_64KiB",
                "simdutf8 (what feed uses), 64 KiB mixed text",
                65536.0,
            ),
            (
                "utf8/std_64KiB",
                "std::str::from_utf8, 64 KiB mixed text",
                65536.0,
            ),
            (
                "http/parse_request_head",
                "parse_request_head, 8-header request",
                0.0,
            ),
            (
                "router/100_routes_last",
                "Router::find, 100 routes, param route near the end",
                0.0,
            ),
            (
                "router/100_routes_miss",
                "Router::find, 100 routes, no match",
                0.0,
            ),
        ];
        out.push_str("## Micro-benchmarks (criterion, median)\n\n| benchmark | time | throughput |\n|---|---:|---:|\n");
        let mut any = false;
        for (id, title, bytes) in micro {
            let Some(ns) = est(id) else { continue };
            any = true;
            let tp = if *bytes > 0.0 {
                format!("{:.2} GB/s", bytes / ns)
            } else {
                "–".into()
            };
            let time = if ns >= 1000.0 {
                format!("{:.2} µs", ns / 1000.0)
            } else {
                format!("{ns:.1} ns")
            };
            let _ = writeln!(out, "| {title} (`{id}`) | {time} | {tp} |");
        }
        if !any {
            out.push_str("| (no criterion results found) | | |\n");
        }
        for size in ["16384", "1048576"] {
            let got = match (
                est(&format!("mask/apply_mask_{size}")),
                est(&format!("mask/memcpy_{size}")),
            ) {
                (Some(m), Some(c)) => Some(c / m),
                _ => None,
            };
            let _ = writeln!(
                goals_md,
                "| unmasking ≥ 0.5× memcpy speed ({size} B) | {} | {} |",
                fmt_opt(got, 2),
                verdict(got.map(|g| g >= 0.5))
            );
        }
        out.push('\n');
    }

    println!(
        "## Goals\n\n\
         Each figure is the median of the per-round ratios pollserve ÷ peer, with their interquartile range \
         (half the rounds fall inside it); \"busy\" is the share of a core each server used (pollserve / peer).\n\n\
         | goal | measured | verdict |\n|---|---|---|\n{goals_md}\n{out}"
    );
    draw_chart(&args[2], &bars).expect("draw chart");
}

/// Verdict on `ratio ≤ goal` where either side's p99 may be capped at the
/// probe timeout (a lower bound): a capped numerator can only make the real
/// ratio larger, a capped denominator only smaller, so only the outcome
/// that the bound proves is given.
fn bounded_verdict(
    ratio: Option<f64>,
    goal: f64,
    num_capped: bool,
    den_capped: bool,
) -> &'static str {
    let Some(r) = ratio else {
        return verdict(None);
    };
    match (num_capped, den_capped) {
        (true, true) => "no verdict: both p99 at the probe timeout",
        (true, false) if r <= goal => "no verdict: pollserve's p99 at the probe timeout",
        (false, true) if r > goal => "no verdict: the reference p99 at the probe timeout",
        _ => verdict(Some(r <= goal)),
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

fn draw_chart(path: &str, bars: &[(String, f64)]) -> Result<(), Box<dyn std::error::Error>> {
    let n = bars.len().max(1);
    let height = 60 + 26 * n as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let xmax = bars.iter().map(|b| b.1).fold(1.5f64, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "pollserve throughput ÷ peer (median of side-by-side rounds; > 1 = pollserve faster)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(5)
        .build_cartesian_2d(0f64..xmax, 0f64..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("ratio")
        .draw()?;
    for (i, (label, r)) in bars.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        let color = if *r >= 1.0 {
            RGBColor(60, 140, 80)
        } else {
            RGBColor(200, 90, 60)
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, y + 0.12), (*r, y + 0.88)],
            color.mix(0.55).filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{label}: {r:.2}"),
            (xmax * 0.01, y + 0.72),
            ("sans-serif", 13).into_font().color(&BLACK),
        )))?;
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 0.0), (1.0, n as f64)],
        BLACK.stroke_width(2),
    )))?;
    root.present()?;
    Ok(())
}

/// Goal on the compressed echo: pollserve's messages per second ÷ the
/// fastest peer's, at least.
const PMD_GOAL: f64 = 2.0;
/// Goal on the memory of an idle compressed connection whose server keeps
/// no context (`pollserve_default`), bytes.
const PMD_IDLE_GOAL: f64 = 4096.0;

/// One run of the permessage-deflate rows.
struct PmdRun {
    rate: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    cpu: Option<f64>,
    /// Server-to-client frame bytes per echo.
    wire: Option<f64>,
    /// The same message's frame uncompressed.
    raw_frame: Option<f64>,
    /// Share of the echoes that came compressed.
    share: Option<f64>,
    /// Client frame bytes per message.
    client: Option<f64>,
    negotiated: String,
}

/// The permessage-deflate section (`BENCH_ONLY=pmd`), from its own raw
/// lines:
///
/// * `pmd_1k subject round rate p50_us p99_us cpu_us_per_msg wire_bytes
///   raw_frame_bytes compressed_share client_frame_bytes negotiated`: the
///   compressed echo, 100 connections × 1 KiB JSON;
/// * `pmd_idle subject round bytes_per_conn conns - - negotiated`: memory
///   per idle compressed connection.
///
/// `negotiated` is the server's permessage-deflate parameters joined by
/// `;` (`-`: none). Ratios are per round, medians over rounds, as in the
/// other rows; the throughput goal is against the fastest peer of each round.
fn pmd_report(raw: &str, out: &mut String, goals_md: &mut String, bars: &mut Vec<(String, f64)>) {
    const PEERS: [&str; 2] = ["node_ws", "python_websockets"];
    const OURS: [&str; 2] = [US, "pollserve_server_takeover"];
    let mut echo: BTreeMap<&str, BTreeMap<u32, PmdRun>> = BTreeMap::new();
    let mut idle: BTreeMap<&str, BTreeMap<u32, PmdRun>> = BTreeMap::new();
    for line in raw.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (Some(&case), Some(&subject), Some(round)) =
            (f.first(), f.get(1), f.get(2).and_then(|r| r.parse().ok()))
        else {
            continue;
        };
        let at = |k: usize| f.get(k).and_then(|s| num(s));
        let (map, negotiated) = match case {
            "pmd_1k" => (&mut echo, f.get(11)),
            "pmd_idle" => (&mut idle, f.get(7)),
            _ => continue,
        };
        map.entry(subject).or_default().insert(
            round,
            PmdRun {
                rate: at(3),
                p50: at(4),
                p99: at(5),
                cpu: at(6),
                wire: at(7),
                raw_frame: at(8),
                share: at(9),
                client: at(10),
                negotiated: negotiated.map_or("-", |s| s).to_string(),
            },
        );
    }
    let med = |m: &BTreeMap<&str, BTreeMap<u32, PmdRun>>,
               s: &str,
               get: &dyn Fn(&PmdRun) -> Option<f64>|
     -> Option<f64> { median(m.get(s)?.values().filter_map(get).collect()) };
    // The negotiated parameters of a subject: one value, or each one seen.
    let negotiated = |m: &BTreeMap<&str, BTreeMap<u32, PmdRun>>, s: &str| -> String {
        let mut seen: Vec<&str> = m
            .get(s)
            .map(|r| r.values().map(|r| r.negotiated.as_str()).collect())
            .unwrap_or_default();
        seen.sort_unstable();
        seen.dedup();
        format!("`{}`", seen.join("`, `"))
    };
    let busy = |r: &PmdRun| Some(r.rate? * r.cpu? / 1e6);
    // Per-round ratio of subject a's value to b's (or to the largest of bs).
    let ratio_q = |a: &str, bs: &[&str], get: &dyn Fn(&PmdRun) -> Option<f64>| {
        let ra = echo.get(a)?;
        quartiles(
            ra.iter()
                .filter_map(|(round, r)| {
                    let best = bs
                        .iter()
                        .filter_map(|b| get(echo.get(b)?.get(round)?))
                        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))?;
                    Some(get(r)? / best)
                })
                .filter(|x| x.is_finite())
                .collect(),
        )
    };

    if !echo.is_empty() {
        out.push_str("## Compressed WebSocket echo (permessage-deflate, RFC 7692)\n\n");
        out.push_str(
            "`loadgen echo --deflate`: 100 connections, each sends a 1 KiB JSON text message \
             (64 different telemetry records), compressed by the client without context \
             (`client_no_context_takeover` offered), waits for the echo, inflates it and checks \
             every byte, repeats. pollserve in its default mode (neither side keeps a \
             compression context) and with `server-takeover` (the server keeps its compressor's \
             context, as both peers do by default); Node `ws` with `perMessageDeflate: true` \
             and Python `websockets` with `compression=\"deflate\"`, at their default \
             settings (bench/peers/). Wire bytes: server-to-client frame bytes per echo, \
             headers included, beside the uncompressed frame. Ratios pollserve ÷ server, per \
             round, median over rounds. tokio-tungstenite and fastwebsockets have no \
             permessage-deflate: no row.\n\n",
        );
        out.push_str("| server | negotiated (server's answer) | msg/s (median) | p50 µs | p99 µs | server CPU µs/msg | busy | wire bytes/msg | client bytes/msg | echoes compressed | throughput ratio | CPU/msg ratio |\n");
        out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let mut names: Vec<&str> = echo.keys().copied().collect();
        names.sort_by_key(|n| (!OURS.contains(n), *n != US, n.to_string()));
        for s in names {
            let (tr, cr) = if s == US {
                ("1 (reference)".to_string(), "–".to_string())
            } else {
                let tr = ratio_q(US, &[s], &|r| r.rate).map(|q| q.1);
                if let Some(t) = tr {
                    bars.push((format!("pmd_1k vs {s}"), t));
                }
                (
                    fmt_opt(tr, 2),
                    fmt_opt(ratio_q(US, &[s], &|r| r.cpu).map(|q| q.1), 2),
                )
            };
            let raw_frame = med(&echo, s, &|r| r.raw_frame);
            let _ = writeln!(
                out,
                "| {s} | {} | {} | {} | {} | {} | {} | {} of {} | {} | {} | {tr} | {cr} |",
                negotiated(&echo, s),
                fmt_opt(med(&echo, s, &|r| r.rate), 0),
                fmt_opt(med(&echo, s, &|r| r.p50), 1),
                fmt_opt(med(&echo, s, &|r| r.p99), 1),
                fmt_opt(med(&echo, s, &|r| r.cpu), 2),
                fmt_pct(med(&echo, s, &busy)),
                fmt_opt(med(&echo, s, &|r| r.wire), 1),
                fmt_opt(raw_frame, 0),
                fmt_opt(med(&echo, s, &|r| r.client), 1),
                fmt_pct(med(&echo, s, &|r| r.share)),
            );
        }
        out.push('\n');
        // The fastest peer: the highest median rate.
        let fastest = PEERS
            .iter()
            .filter_map(|p| Some((*p, med(&echo, p, &|r| r.rate)?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|p| p.0);
        for us in OURS {
            if !echo.contains_key(us) {
                continue;
            }
            let got = ratio_q(us, &PEERS, &|r| r.rate);
            let Some(peer) = fastest else {
                let _ = writeln!(
                    goals_md,
                    "| WS echo 100 × 1 KiB JSON, permessage-deflate, {us}: throughput ≥ {PMD_GOAL}× the fastest peer | – | {} |",
                    verdict(None)
                );
                continue;
            };
            let cpu = ratio_q(us, &[peer], &|r| r.cpu).map_or(String::new(), |q| {
                format!("; server CPU per msg {:.2}× {peer}", q.1)
            });
            let (busy_us, busy_peer) = (med(&echo, us, &busy), med(&echo, peer, &busy));
            let client_bound = busy_us
                .zip(busy_peer)
                .is_some_and(|(a, b)| a < 0.8 && b < 0.8);
            let _ = writeln!(
                goals_md,
                "| WS echo 100 × 1 KiB JSON, permessage-deflate, {us}: throughput ≥ {PMD_GOAL}× the fastest peer of each round ({peer} by median) | {}{cpu}; busy {} / {} | {} |",
                fmt_q(got),
                fmt_pct(busy_us),
                fmt_pct(busy_peer),
                if client_bound {
                    "load-generator bound: no verdict (both servers idle part of the time)"
                } else {
                    verdict(got.map(|g| g.1 >= PMD_GOAL))
                }
            );
        }
    }

    if !idle.is_empty() {
        out.push_str("## Memory per idle compressed WebSocket connection\n\n");
        out.push_str(
            "As the idle WebSocket row: server VmRSS after opening the connections minus before, \
             divided by the connections; each connection did one echo of a compressed 1 KiB JSON \
             message (`loadgen idle --deflate`), except `pollserve_off` (permessage-deflate \
             declined: the plain 20-byte echo, the baseline). pollserve modes: `default` \
             (neither side keeps context), `server_takeover` (the server keeps its compressor's), \
             `takeover` (the server asks neither side to reset, and the client offers as \
             Chromium does, without `client_no_context_takeover`: the server may keep an \
             inflate context too). Fresh server processes for every run.\n\n",
        );
        out.push_str("| server | negotiated (server's answer) | connections | bytes per connection (median) |\n|---|---|---:|---:|\n");
        let mut names: Vec<&str> = idle.keys().copied().collect();
        names.sort_by_key(|n| (!n.starts_with(US), n.to_string()));
        for s in names {
            let conns = idle[s].values().next().and_then(|r| r.p50).unwrap_or(0.0);
            let _ = writeln!(
                out,
                "| {s} | {} | {conns:.0} | {} |",
                negotiated(&idle, s),
                fmt_opt(med(&idle, s, &|r| r.rate), 0)
            );
        }
        out.push('\n');
        let ours = med(&idle, "pollserve_default", &|r| r.rate);
        let _ = writeln!(
            goals_md,
            "| idle compressed connection memory, no server context (pollserve default) ≤ {PMD_IDLE_GOAL:.0} B (plain: {} B) | {} B | {} |",
            fmt_opt(med(&idle, "pollserve_off", &|r| r.rate), 0),
            fmt_opt(ours, 0),
            verdict(ours.map(|o| o <= PMD_IDLE_GOAL))
        );
    }
}
