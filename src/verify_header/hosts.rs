//! Host names: normalising, registered domains, and what a name says about who runs it.
use std::net::IpAddr;

/// Two-label public suffixes common enough to matter (`co.uk`, `com.au`, ...). Beyond these,
/// a second-level label such as `co`, `com`, `net`, `org`, `ac`, `gov` or `edu` under a
/// two-letter country code also counts as a public suffix.
const TWO_LABEL_SUFFIXES: &[&str] = &[
    "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk", "net.uk", "com.au",
    "net.au", "org.au", "edu.au", "gov.au", "co.nz", "net.nz", "org.nz", "co.jp", "ne.jp", "or.jp",
    "ac.jp", "co.za", "co.in", "co.il", "co.kr", "com.br", "com.cn", "com.mx", "com.tr", "com.pl",
    "net.pl", "org.pl", "com.ar", "com.sg", "com.hk", "com.tw", "gouv.fr", "asso.fr", "com.es",
    "com.pt",
];

const SECOND_LEVEL_SUFFIX_LABELS: &[&str] = &["co", "com", "net", "org", "ac", "gov", "edu"];

/// The registered domains of OVHcloud's own mail platform.
const OVH_DOMAINS: &[&str] = &["ovh.net", "ovh.com", "ovhcloud.com", "ovh.ca", "ovh.us"];

/// Registered domains of large mail providers whose hosts, as a `by` host, only ever receive
/// mail for their own users (inbound MX and filters).
const INBOUND_PROVIDER_DOMAINS: &[&str] = &[
    "google.com",
    "outlook.com",
    "office365.com",
    "exchangelabs.com",
    "yahoodns.net",
    "messagingengine.com",
    "pphosted.com",
    "mimecast.com",
    "icloud.com",
];

/// A host name in lower case without a trailing dot, or `None` for an empty or clearly
/// non-host token.
pub fn normalize(host: &str) -> Option<String> {
    let host = host
        .trim()
        .trim_matches(|c| c == '[' || c == ']' || c == '<' || c == '>' || c == '"' || c == '\'')
        .trim_end_matches(['.', ',', ';', ':'])
        .to_ascii_lowercase();
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return None;
    }
    Some(host)
}

/// Whether the text is an IPv4 or IPv6 address (with or without brackets or an `IPv6:` tag).
pub fn is_ip(host: &str) -> bool {
    let host = host.trim_matches(|c| c == '[' || c == ']');
    let host = host
        .strip_prefix("ipv6:")
        .or_else(|| host.strip_prefix("IPv6:"))
        .unwrap_or(host);
    host.parse::<IpAddr>().is_ok()
}

/// A host that says nothing about who runs it: `localhost`, an address, a name without a
/// dot, or a private suffix (`.local`, `.lan`, `.internal`, `.localdomain`).
pub fn is_internal(host: &str) -> bool {
    is_ip(host)
        || host == "localhost"
        || host == "unknown"
        || !host.contains('.')
        || [".local", ".lan", ".internal", ".localdomain", ".localhost"]
            .iter()
            .any(|suffix| host.ends_with(suffix))
}

/// The registered domain, approximated: the last two labels, or the last three when the last
/// two are a public suffix (`example.co.uk`). `None` for addresses and dotless names.
pub fn registered_domain(host: &str) -> Option<String> {
    if is_ip(host) {
        return None;
    }
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    if labels.len() < 2 {
        return None;
    }
    let last_two = labels[labels.len() - 2..].join(".");
    let tld = labels[labels.len() - 1];
    let second = labels[labels.len() - 2];
    let public_suffix = TWO_LABEL_SUFFIXES.contains(&last_two.as_str())
        || (tld.len() == 2
            && tld.chars().all(|c| c.is_ascii_alphabetic())
            && SECOND_LEVEL_SUFFIX_LABELS.contains(&second));
    if public_suffix {
        (labels.len() >= 3).then(|| labels[labels.len() - 3..].join("."))
    } else {
        Some(last_two)
    }
}

/// Whether the domain is one of OVHcloud's own.
pub fn is_ovh_domain(domain: &str) -> bool {
    OVH_DOMAINS.contains(&domain)
}

/// A host of OVHcloud (`*.ovh.net`, `*.mail.ovh.net`, `EX*.mail.ovh.net`, `*.ovh.com`,
/// `*.ovhcloud.com`, ...), on either side.
pub fn is_ovh_host(host: &str) -> bool {
    registered_domain(host).is_some_and(|d| is_ovh_domain(&d))
}

/// An OVHcloud host that receives mail for OVH-hosted recipients: the MX (`mx*.mail.ovh.net`,
/// `mx*.ovh.net`) and the stages behind it (`in*`, `vr*`, `out*.mail.ovh.net`: the guide's
/// sample shows them on the recipient's side).
pub fn is_ovh_inbound(host: &str) -> bool {
    if !is_ovh_host(host) {
        return false;
    }
    let first = host.split('.').next().unwrap_or_default();
    let numbered = |prefix: &str, digits_required: bool| {
        first.strip_prefix(prefix).is_some_and(|rest| {
            (!digits_required || !rest.is_empty()) && rest.chars().all(|c| c.is_ascii_digit())
        })
    };
    numbered("mx", false)
        || first == "mxb"
        || numbered("in", true)
        || numbered("vr", true)
        || numbered("out", true)
}

/// A host of a large provider that only receives mail for its users (Google, Microsoft 365,
/// Yahoo, Fastmail, Proofpoint, Mimecast, iCloud).
pub fn is_provider_inbound(host: &str) -> bool {
    registered_domain(host).is_some_and(|d| INBOUND_PROVIDER_DOMAINS.contains(&d.as_str()))
}

/// The domain of a mail address (`Name <user@domain>` or a bare address), lower case.
pub fn address_domain(address: &str) -> Option<String> {
    let address = match (address.rfind('<'), address.rfind('>')) {
        (Some(open), Some(close)) if open < close => &address[open + 1..close],
        _ => address,
    };
    let (_, domain) = address.trim().rsplit_once('@')?;
    normalize(domain).filter(|d| d.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_domains() {
        for (host, domain) in [
            ("smtp-relay.smtp.example.com", Some("example.com")),
            ("example.com", Some("example.com")),
            ("mail.example.co.uk", Some("example.co.uk")),
            ("out.relay.example.com.au", Some("example.com.au")),
            ("a.b.example.com.pl", Some("example.com.pl")),
            ("co.uk", None),
            ("in31.mail.ovh.net", Some("ovh.net")),
            ("localhost", None),
            ("192.168.1.2", None),
            ("mydomain.ovh", Some("mydomain.ovh")),
        ] {
            assert_eq!(registered_domain(host).as_deref(), domain, "{host}");
        }
    }

    #[test]
    fn internal_hosts() {
        for host in [
            "localhost",
            "192.168.1.2",
            "[10.0.0.1]",
            "2001:db8::1",
            "queue",
            "dag1ex1.emp2.local",
        ] {
            assert!(is_internal(host), "{host}");
        }
        assert!(!is_internal("in31.mail.ovh.net"));
    }

    #[test]
    fn ovh_hosts() {
        for host in [
            "mx1.mail.ovh.net",
            "in31.mail.ovh.net",
            "vr45.mail.ovh.net",
            "out28.mail.ovh.net",
            "mx0.ovh.net",
        ] {
            assert!(is_ovh_inbound(host), "{host}");
        }
        for host in [
            "ex3.mail.ovh.net",
            "mxplan6.mail.ovh.net",
            "mo4.mail-out.ovh.net",
            "output28.mail.ovh.net",
            "inbound.example.com",
        ] {
            assert!(!is_ovh_inbound(host), "{host}");
        }
        assert!(is_ovh_host("ex3.mail.ovh.net"));
        assert!(is_ovh_host("pro1.mail.ovhcloud.com"));
        assert!(!is_ovh_host("mydomain.ovh"));
    }

    #[test]
    fn addresses() {
        assert_eq!(
            address_domain("\"smtp-relay.example.com\" <contact@MyDomain.ovh>").as_deref(),
            Some("mydomain.ovh")
        );
        assert_eq!(
            address_domain("<bounces-1-newsletter=mydomain.ovh@sender-id.example.com>").as_deref(),
            Some("sender-id.example.com")
        );
        assert_eq!(address_domain("<>"), None);
    }
}
