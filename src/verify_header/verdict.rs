//! From hops to a verdict: where the message left the sender's side, and through what.
use super::hosts::{
    address_domain, is_internal, is_ip, is_ovh_domain, is_ovh_host, is_ovh_inbound,
    is_provider_inbound, normalize, registered_domain,
};
use super::parse::{HeaderBlock, Hop, InputError, hops};
use std::fmt::Write as _;

/// The relay to look for: a send connector's smart host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// The host name (or address), lower case.
    pub host: String,
    /// Its registered domain (`None` for an address).
    pub domain: Option<String>,
}

impl Relay {
    /// A relay from a smart host name or address.
    pub fn new(host: &str) -> Result<Self, String> {
        let normalized = normalize(host)
            .filter(|h| h.contains(['.', ':']) || h == "localhost")
            .ok_or_else(|| format!("`{host}` is not a host name such as smtp-relay.example.com"))?;
        let domain = registered_domain(&normalized);
        Ok(Self {
            host: normalized,
            domain,
        })
    }

    fn is_ip(&self) -> bool {
        is_ip(&self.host)
    }
}

/// How a host matched the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayMatch {
    /// The relay's own name, or a name under it.
    Host,
    /// Another host of the relay's registered domain.
    Domain(String),
}

/// Which side of the hand-over a hop is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Below the hand-over: the sender's servers (the platform, the relay).
    Sender,
    /// The hop where the recipient's side received the message from the sender's side.
    Handover,
    /// Above the hand-over: the recipient's servers, which say nothing about the way out.
    Recipient,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Self::Sender => "sender",
            Self::Handover => "handover",
            Self::Recipient => "recipient",
        }
    }
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The message left the sender's side through the relay.
    Relay,
    /// It left through the platform's own outgoing server (an OVHcloud host, or one in the
    /// sender's own domain).
    Platform(String),
    /// It left through another host.
    OtherHost(String),
    /// No host on the sender's side is recorded, and nothing else shows the relay.
    Unknown,
}

impl Verdict {
    /// 0 when the message left through the relay, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        i32::from(*self != Self::Relay)
    }

    /// Whether the message left through the relay.
    pub fn is_relay(&self) -> bool {
        *self == Self::Relay
    }
}

/// The whole analysis of one header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub relay: Relay,
    /// The hops, from the origin to the recipient.
    pub hops: Vec<Hop>,
    /// The side of each hop (same order).
    pub sides: Vec<Side>,
    /// Index (in `hops`) of the hop where the message left the sender's side.
    pub handover: usize,
    /// The last host on the sender's side, as the verdict judged it.
    pub sender_host: Option<String>,
    pub verdict: Verdict,
    /// Why: one line each, the deciding line first.
    pub evidence: Vec<String>,
}

/// What the other header fields say about both ends.
#[derive(Debug, Default)]
struct Context {
    /// The recipient's registered domain (Delivered-To, X-Original-To, the top hop's `for`,
    /// To).
    recipient_domain: Option<String>,
    /// The sender's registered domain (From).
    sender_domain: Option<String>,
    /// Authentication-Results server ids with the position of their field.
    authserv: Vec<(usize, String)>,
    /// `d=` of each DKIM-Signature.
    dkim_domains: Vec<String>,
    /// `(result, domain)` of each `dkim=` in Authentication-Results.
    dkim_results: Vec<(String, String)>,
    return_path: Option<String>,
    from: Option<String>,
}

fn context(block: &HeaderBlock, hops: &[Hop]) -> Context {
    let mut ctx = Context::default();
    let envelope_recipient = [
        "Delivered-To",
        "X-Original-To",
        "Envelope-To",
        "X-Delivered-To",
    ]
    .iter()
    .find_map(|name| block.first(name).and_then(|f| address_domain(&f.value)));
    ctx.recipient_domain = envelope_recipient
        .or_else(|| {
            hops.iter()
                .rev()
                .find_map(|h| h.for_address.as_deref().and_then(address_domain))
        })
        .or_else(|| block.first("To").and_then(|f| address_domain(&f.value)))
        .and_then(|d| registered_domain(&d));
    ctx.from = block.first("From").map(|f| f.value.clone());
    ctx.sender_domain = ctx
        .from
        .as_deref()
        .and_then(address_domain)
        .and_then(|d| registered_domain(&d));
    if ctx.sender_domain == ctx.recipient_domain {
        // Sent to oneself: the domain tells neither side apart.
        ctx.sender_domain = None;
    }
    ctx.return_path = block
        .first("Return-Path")
        .and_then(|f| address_domain(&f.value));
    for (_, field) in block.all("DKIM-Signature") {
        if let Some(d) = tag(&field.value, "d") {
            ctx.dkim_domains.push(d);
        }
    }
    for name in ["Authentication-Results", "ARC-Authentication-Results"] {
        for (index, field) in block.all(name) {
            let value = strip_comments(&field.value);
            let mut parts = value.split(';').map(str::trim);
            let mut id = parts.next().unwrap_or_default();
            if id.starts_with("i=") {
                id = parts.next().unwrap_or_default();
            }
            if let Some(host) = id.split_whitespace().next().and_then(normalize) {
                ctx.authserv.push((index, host));
            }
            for part in value.split(';').map(str::trim) {
                let Some(rest) = part.strip_prefix("dkim=") else {
                    continue;
                };
                let result = rest.split_whitespace().next().unwrap_or_default();
                let domain = part
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("header.d="))
                    .or_else(|| {
                        part.split_whitespace()
                            .find_map(|w| w.strip_prefix("header.i="))
                            .map(|i| i.trim_start_matches('@'))
                    })
                    .and_then(normalize);
                if let Some(domain) = domain {
                    ctx.dkim_results.push((result.to_ascii_lowercase(), domain));
                }
            }
        }
    }
    ctx
}

/// The text without its parenthesised comments (which may hold `;`).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0_usize;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// A `tag=value` of a DKIM-Signature, lower case.
fn tag(value: &str, name: &str) -> Option<String> {
    value.split(';').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(name))
            .then(|| normalize(&v.split_whitespace().collect::<String>()))
            .flatten()
    })
}

/// How a receiving (`by`) host looks from the recipient's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByClass {
    /// The relay, or a host of the sender's own domain: the sender's side.
    SenderSide,
    /// The recipient's domain, an Authentication-Results server above the hop, or a known
    /// inbound MX or filter (OVH's `mx*`/`in*`/`vr*`/`out*.mail.ovh.net`, Google, ...).
    RecipientMarker,
    /// `localhost`, an address, a dotless or private name: says nothing.
    Internal,
    /// Any other OVHcloud host.
    Ovh,
    Other,
}

struct Analyser<'a> {
    relay: &'a Relay,
    ctx: Context,
    /// Match the relay by exact host only: its registered domain is OVH's or the sender's.
    exact_only: bool,
}

impl Analyser<'_> {
    fn relay_match(&self, host: &str) -> Option<RelayMatch> {
        if host == self.relay.host || host.ends_with(&format!(".{}", self.relay.host)) {
            return Some(RelayMatch::Host);
        }
        if self.exact_only {
            return None;
        }
        let domain = self.relay.domain.as_deref()?;
        (registered_domain(host).as_deref() == Some(domain))
            .then(|| RelayMatch::Domain(domain.to_owned()))
    }

    fn in_sender_domain(&self, host: &str) -> bool {
        self.ctx.sender_domain.is_some() && registered_domain(host) == self.ctx.sender_domain
    }

    fn classify_by(&self, hop: &Hop) -> ByClass {
        let Some(by) = hop.by.as_deref() else {
            return ByClass::Other;
        };
        if self.relay_match(by).is_some() || self.in_sender_domain(by) {
            return ByClass::SenderSide;
        }
        let authserv_above = self
            .ctx
            .authserv
            .iter()
            .any(|(index, host)| *index < hop.field_index && host == by);
        if authserv_above
            || (self.ctx.recipient_domain.is_some()
                && registered_domain(by) == self.ctx.recipient_domain)
            || is_ovh_inbound(by)
            || is_provider_inbound(by)
        {
            return ByClass::RecipientMarker;
        }
        if is_internal(by) {
            return ByClass::Internal;
        }
        if is_ovh_host(by) {
            return ByClass::Ovh;
        }
        ByClass::Other
    }

    /// The hand-over hop: see the module documentation for the rule.
    fn handover(&self, hops: &[Hop]) -> usize {
        let top = hops.len() - 1;
        let public = |hop: &Hop| hop.by.as_deref().is_some_and(|by| !is_internal(by));
        let Some(first_public) = (0..hops.len()).rev().find(|&i| public(&hops[i])) else {
            return top;
        };
        let mut lowest = first_public;
        // An OVH-hosted recipient's own servers (its Exchange hosts) sit above OVH's inbound
        // MX; until that MX is passed, any OVH host is the recipient's.
        let mut recipient_at_ovh = self.classify_by(&hops[first_public]) == ByClass::Ovh;
        for i in (0..first_public).rev() {
            match self.classify_by(&hops[i]) {
                ByClass::RecipientMarker => {
                    lowest = i;
                    recipient_at_ovh = false;
                }
                ByClass::Internal => {}
                ByClass::Ovh if recipient_at_ovh => lowest = i,
                ByClass::Ovh | ByClass::Other | ByClass::SenderSide => break,
            }
        }
        lowest
    }

    /// The last host on the sender's side: the resolved name of the hand-over's client, else
    /// the name it gave (HELO), else the `by` of the hop below, else its address.
    fn sender_host(hops: &[Hop], handover: usize) -> Option<String> {
        let hop = &hops[handover];
        let from = hop.from.as_ref();
        from.and_then(|f| f.rdns.clone().filter(|h| !is_internal(h)))
            .or_else(|| from.and_then(|f| f.helo.clone().filter(|h| !is_internal(h))))
            .or_else(|| {
                handover
                    .checked_sub(1)
                    .and_then(|below| hops[below].by.clone())
                    .filter(|h| !is_internal(h))
            })
            .or_else(|| from.and_then(|f| f.ip.clone()))
    }
}

/// `hop 3` or `hops 3, 4`.
fn list(indexes: &[usize]) -> String {
    let words: Vec<String> = indexes.iter().map(|i| (i + 1).to_string()).collect();
    let noun = if words.len() == 1 { "hop" } else { "hops" };
    format!("{noun} {}", words.join(", "))
}

/// Analyses a header block for a relay. Fails only when the block has no `Received:` field.
pub fn analyse(block: &HeaderBlock, relay: &Relay) -> Result<Report, InputError> {
    let hops = hops(block);
    if hops.is_empty() {
        return Err(InputError::NoReceived);
    }
    let ctx = context(block, &hops);
    let exact_only = relay
        .domain
        .as_deref()
        .is_some_and(|d| is_ovh_domain(d) || Some(d) == ctx.sender_domain.as_deref());
    let analyser = Analyser {
        relay,
        ctx,
        exact_only,
    };
    let handover = analyser.handover(&hops);
    let sides: Vec<Side> = (0..hops.len())
        .map(|i| match i.cmp(&handover) {
            std::cmp::Ordering::Less => Side::Sender,
            std::cmp::Ordering::Equal => Side::Handover,
            std::cmp::Ordering::Greater => Side::Recipient,
        })
        .collect();
    let sender_host = Analyser::sender_host(&hops, handover);
    let hop = &hops[handover];
    let mut evidence = Vec::new();
    let by = hop.by.as_deref().unwrap_or("?");
    let from_text = hop
        .from
        .as_ref()
        .map_or_else(|| "an unnamed server".to_owned(), ToString::to_string);

    let relay_ip = relay.is_ip()
        && hop
            .from
            .as_ref()
            .and_then(|f| f.ip.as_deref())
            .is_some_and(|ip| ip == relay.host);
    let sender_match = sender_host.as_deref().and_then(|h| analyser.relay_match(h));
    let dkim_pass_for_relay = analyser
        .ctx
        .dkim_results
        .iter()
        .any(|(result, domain)| result == "pass" && analyser.relay_match(domain).is_some());

    let verdict = match (&sender_host, &sender_match) {
        (_, Some(_)) => Verdict::Relay,
        _ if relay_ip => Verdict::Relay,
        (Some(host), None) if is_ovh_host(host) || analyser.in_sender_domain(host) => {
            Verdict::Platform(host.clone())
        }
        (Some(host), None) if !is_ip(host) => Verdict::OtherHost(host.clone()),
        _ if dkim_pass_for_relay => Verdict::Relay,
        (Some(host), None) => Verdict::OtherHost(host.clone()),
        (None, None) => Verdict::Unknown,
    };

    // The deciding line.
    let sender_text = sender_host.as_deref().unwrap_or("no recorded host");
    let decided = match (&verdict, &sender_match) {
        (Verdict::Relay, Some(RelayMatch::Host)) => {
            format!("{sender_text} is the relay {}", relay.host)
        }
        (Verdict::Relay, Some(RelayMatch::Domain(d))) => format!(
            "{sender_text} matches the relay {} by its registered domain {d}",
            relay.host
        ),
        (Verdict::Relay, None) if relay_ip => format!("its address is the relay {}", relay.host),
        (Verdict::Relay, None) => format!(
            "{sender_text} is not named, but Authentication-Results shows a passing DKIM signature of the relay's domain"
        ),
        (Verdict::Platform(h), _) if is_ovh_host(h) => {
            format!("{h} is an OVHcloud server: the platform's own outgoing server")
        }
        (Verdict::Platform(h), _) => {
            format!("{h} is in the sender's own domain: the platform's own outgoing server")
        }
        (Verdict::OtherHost(h), _) => format!("{h} is neither the relay nor the platform"),
        (Verdict::Unknown, _) => "no server on the sender's side is recorded".to_owned(),
    };
    evidence.push(format!(
        "hop {}: the message left the sender's side there: {by} received it from {from_text}; {decided}",
        handover + 1
    ));
    if let Some(from) = &hop.from {
        if let (Some(rdns), Some(helo)) = (&from.rdns, &from.helo) {
            if rdns != helo && analyser.relay_match(helo).is_some() && sender_match.is_none() {
                evidence.push(format!(
                    "hop {}: the client called itself {helo} (HELO), but its address resolves to {rdns}: the resolved name counts",
                    handover + 1
                ));
            }
        }
    }

    // Sender-side hops naming the relay or the platform.
    // A hop is judged by its receiving server, or by its client when it names none.
    let names = |h: &Hop| match &h.by {
        Some(by) if !is_internal(by) => vec![by.clone()],
        _ => h
            .from
            .iter()
            .flat_map(|f| f.names().map(str::to_owned))
            .collect(),
    };
    let relay_hops: Vec<usize> = (0..handover)
        .filter(|&i| {
            names(&hops[i])
                .iter()
                .any(|n| analyser.relay_match(n).is_some())
        })
        .collect();
    let platform_hops: Vec<usize> = (0..handover)
        .filter(|&i| {
            names(&hops[i])
                .iter()
                .any(|n| is_ovh_host(n) || analyser.in_sender_domain(n))
        })
        .collect();
    if !relay_hops.is_empty() {
        if verdict.is_relay() {
            evidence.push(format!(
                "{}: the relay's own servers, on the sender's side",
                list(&relay_hops)
            ));
        } else {
            evidence.push(format!(
                "{}: the relay's name appears there, below hop {}, where the message left through {sender_text}: not counted (anything below the way out may be forged)",
                list(&relay_hops),
                handover + 1
            ));
        }
    }
    if !platform_hops.is_empty() {
        if verdict.is_relay() {
            evidence.push(format!(
                "{}: the platform's servers handed the message on before the relay (as a connector does)",
                list(&platform_hops)
            ));
        } else {
            evidence.push(format!(
                "{}: the platform's own servers, on the sender's side",
                list(&platform_hops)
            ));
        }
    }
    let recipient_hops: Vec<usize> = (handover + 1..hops.len()).collect();
    if !recipient_hops.is_empty() {
        let at_ovh = recipient_hops
            .iter()
            .chain(std::iter::once(&handover))
            .any(|&i| hops[i].by.as_deref().is_some_and(is_ovh_host));
        evidence.push(format!(
            "{}: the recipient's side{}, which says nothing about the way out",
            list(&recipient_hops),
            if at_ovh { " (hosted at OVHcloud)" } else { "" }
        ));
    }

    // Supporting evidence.
    for d in &analyser.ctx.dkim_domains {
        let results: Vec<&str> = analyser
            .ctx
            .dkim_results
            .iter()
            .filter(|(_, domain)| domain == d)
            .map(|(result, _)| result.as_str())
            .collect();
        let mut results = results;
        results.dedup();
        let checked = if results.is_empty() {
            String::new()
        } else {
            format!(" (Authentication-Results: dkim={})", results.join(","))
        };
        let matching = if analyser.relay_match(d).is_some() {
            "matches the relay's domain"
        } else {
            "is not the relay's domain"
        };
        evidence.push(format!("DKIM-Signature d={d}{checked}: {matching}"));
    }
    match &analyser.ctx.return_path {
        Some(domain) => {
            let matching = if analyser.relay_match(domain).is_some() {
                "matches the relay's domain (the relay handles bounces)"
            } else {
                "is not the relay's domain"
            };
            evidence.push(format!("Return-Path domain {domain}: {matching}"));
        }
        None if block.first("Return-Path").is_some() => {
            evidence.push("Return-Path is empty (a bounce or notification)".to_owned());
        }
        None => {}
    }
    if let Some(from) = &analyser.ctx.from {
        let address_domain = address_domain(from);
        let display = match from.rfind('<') {
            Some(open) => &from[..open],
            None => "",
        };
        let display_names_relay = display
            .split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '(' || c == ')')
            .filter_map(normalize)
            .any(|w| w.contains('.') && analyser.relay_match(&w).is_some());
        if display_names_relay {
            evidence.push(format!(
                "From: {from}: the relay's name is only in the display name, which the sender writes: not evidence"
            ));
        } else if let Some(domain) = address_domain {
            evidence.push(format!("From: the sender's domain is {domain}"));
        }
    }
    Ok(Report {
        relay: relay.clone(),
        hops,
        sides,
        handover,
        sender_host,
        verdict,
        evidence,
    })
}

/// The report as text: the relay, the hops from the origin, the verdict and its evidence.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let domain = report
        .relay
        .domain
        .as_deref()
        .map(|d| format!(" (registered domain {d})"))
        .unwrap_or_default();
    let _ = writeln!(out, "Relay: {}{domain}", report.relay.host);
    let _ = writeln!(out, "Hops, from the origin to the recipient:");
    for (i, (hop, side)) in report.hops.iter().zip(&report.sides).enumerate() {
        let from = hop
            .from
            .as_ref()
            .map_or_else(|| "-".to_owned(), ToString::to_string);
        let by = hop.by.as_deref().unwrap_or("-");
        let time = hop.time.as_deref().unwrap_or("no time");
        let _ = writeln!(
            out,
            "  {:>2}. {:<9}  from {from}  by {by}  at {time}",
            i + 1,
            side.label()
        );
    }
    let verdict = match &report.verdict {
        Verdict::Relay => format!("left through the relay {}", report.relay.host),
        Verdict::Platform(host) => format!(
            "did NOT leave through the relay {}: it left through the platform's own outgoing server {host}",
            report.relay.host
        ),
        Verdict::OtherHost(host) => format!(
            "did NOT leave through the relay {}: it left through another host, {host}",
            report.relay.host
        ),
        Verdict::Unknown => format!(
            "did NOT show the relay {}: no server on the sender's side is recorded",
            report.relay.host
        ),
    };
    let _ = writeln!(out, "Verdict: {verdict}");
    for line in &report.evidence {
        let _ = writeln!(out, "  - {line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify_header::parse::parse_header_block;

    fn check(header: &str, relay: &str) -> Report {
        let block = parse_header_block(header.as_bytes()).unwrap();
        analyse(&block, &Relay::new(relay).unwrap()).unwrap()
    }

    const VIA_OVH_SMTP: &str = "\
Delivered-To: bob@example.org
Received: from ssl0.ovh.net (ssl0.ovh.net [193.70.18.144]) by mx1.example.org; Tue, 14 Mar 2023 10:00:00 +0100
Received: from ex3.mail.ovh.net (unknown [10.108.2.3]) by ssl0.ovh.net; Tue, 14 Mar 2023 09:59:59 +0000
From: <contact@mydomain.ovh>
";

    #[test]
    fn a_relay_inside_ovh_matches_by_exact_name_only() {
        assert_eq!(check(VIA_OVH_SMTP, "ssl0.ovh.net").verdict, Verdict::Relay);
        // Another OVH host shares the registered domain ovh.net, which proves nothing.
        assert_eq!(
            check(VIA_OVH_SMTP, "smtp.mail.ovh.net").verdict,
            Verdict::Platform("ssl0.ovh.net".into())
        );
    }

    #[test]
    fn a_relay_given_as_an_address() {
        let header = "\
Received: from unknown (HELO relay) (198.51.100.25) by mx.example.org; Tue, 14 Mar 2023
To: bob@example.org
";
        assert_eq!(check(header, "198.51.100.25").verdict, Verdict::Relay);
        assert_eq!(
            check(header, "198.51.100.99").verdict,
            Verdict::OtherHost("198.51.100.25".into())
        );
    }

    #[test]
    fn without_a_sending_host_only_a_verified_relay_signature_counts() {
        let header = "\
Authentication-Results: mx.example.org; dkim=pass header.d=smtp.example.com
Received: by mx.example.org; Tue, 14 Mar 2023
DKIM-Signature: v=1; d=smtp.example.com; s=mail; b=abc
";
        assert_eq!(
            check(header, "smtp-relay.example.com").verdict,
            Verdict::Relay
        );
        let unsigned = "Received: by mx.example.org; Tue, 14 Mar 2023\n";
        assert_eq!(
            check(unsigned, "smtp-relay.example.com").verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn an_authentication_result_below_a_hop_does_not_mark_it() {
        // A sender-written Authentication-Results naming its own outgoing server does not
        // move the hand-over down to the forged relay line.
        let header = "\
Received: from ex3.mail.ovh.net (ex3.mail.ovh.net [51.210.40.13]) by mail.partner.example; Tue, 14 Mar 2023
Received: from ex2.mail.ovh.net by ex3.mail.ovh.net; Tue, 14 Mar 2023
Authentication-Results: ex3.mail.ovh.net; dkim=pass header.d=smtp.example.com
Received: from smtp-relay.example.com by ex2.mail.ovh.net; Tue, 14 Mar 2023
To: carol@partner.example
";
        let report = check(header, "smtp-relay.example.com");
        assert_eq!(report.verdict, Verdict::Platform("ex3.mail.ovh.net".into()));
        assert_eq!(report.handover, 2);
    }

    #[test]
    fn a_relay_in_the_senders_own_domain() {
        let header = "\
Received: from exchange.mydomain.ovh (exchange.mydomain.ovh [203.0.113.7]) by mx.example.org; Tue, 14 Mar 2023
From: <contact@mydomain.ovh>
To: <bob@example.org>
";
        assert_eq!(
            check(header, "relay.mydomain.ovh").verdict,
            Verdict::Platform("exchange.mydomain.ovh".into())
        );
        assert_eq!(
            check(header, "exchange.mydomain.ovh").verdict,
            Verdict::Relay
        );
    }
}
