//! The API route table: method, path template (without `/1.0`), operation and IAM action.
//! Templates are the names counters report (`POST /email/exchange/{organizationName}/…`).

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    AuthTime,
    AuthCredential,
    ListOrganizations,
    ListServices,
    GetService,
    ListConnectors,
    CreateConnector,
    GetConnector,
    PutConnector,
    DeleteConnector,
    ChangeAuthentication,
    ListAccounts,
    GetAccount,
    PutAccount,
    ListAccountTasks,
    GetAccountTask,
    ListDomains,
    GetDomain,
    ChangeDefaultSbr,
    ListTasks,
    GetTask,
}

pub struct Route {
    pub method: &'static str,
    pub template: &'static str,
    pub op: Op,
    pub iam_action: &'static str,
}

macro_rules! p {
    ($rest:literal) => {
        concat!(
            "/email/exchange/{organizationName}/service/{exchangeService}",
            $rest
        )
    };
}

const fn r(method: &'static str, template: &'static str, op: Op, iam: &'static str) -> Route {
    Route {
        method,
        template,
        op,
        iam_action: iam,
    }
}

pub const ROUTES: &[Route] = &[
    r("GET", "/auth/time", Op::AuthTime, ""),
    r("POST", "/auth/credential", Op::AuthCredential, ""),
    r(
        "GET",
        "/email/exchange",
        Op::ListOrganizations,
        "emailExchange:apiovh:get",
    ),
    r(
        "GET",
        "/email/exchange/{organizationName}/service",
        Op::ListServices,
        "emailExchange:apiovh:service/get",
    ),
    r(
        "GET",
        p!(""),
        Op::GetService,
        "emailExchange:apiovh:service/get",
    ),
    r(
        "GET",
        p!("/sendConnector"),
        Op::ListConnectors,
        "emailExchange:apiovh:service/sendConnector/get",
    ),
    r(
        "POST",
        p!("/sendConnector"),
        Op::CreateConnector,
        "emailExchange:apiovh:service/sendConnector/create",
    ),
    r(
        "GET",
        p!("/sendConnector/{id}"),
        Op::GetConnector,
        "emailExchange:apiovh:service/sendConnector/get",
    ),
    r(
        "PUT",
        p!("/sendConnector/{id}"),
        Op::PutConnector,
        "emailExchange:apiovh:service/sendConnector/edit",
    ),
    r(
        "DELETE",
        p!("/sendConnector/{id}"),
        Op::DeleteConnector,
        "emailExchange:apiovh:service/sendConnector/delete",
    ),
    r(
        "POST",
        p!("/sendConnector/{id}/changeAuthentication"),
        Op::ChangeAuthentication,
        "emailExchange:apiovh:service/sendConnector/changeAuthentication",
    ),
    r(
        "GET",
        p!("/account"),
        Op::ListAccounts,
        "emailExchange:apiovh:service/account/get",
    ),
    r(
        "GET",
        p!("/account/{primaryEmailAddress}"),
        Op::GetAccount,
        "emailExchange:apiovh:service/account/get",
    ),
    r(
        "PUT",
        p!("/account/{primaryEmailAddress}"),
        Op::PutAccount,
        "emailExchange:apiovh:service/account/edit",
    ),
    r(
        "GET",
        p!("/account/{primaryEmailAddress}/tasks"),
        Op::ListAccountTasks,
        "emailExchange:apiovh:service/account/tasks/get",
    ),
    r(
        "GET",
        p!("/account/{primaryEmailAddress}/tasks/{id}"),
        Op::GetAccountTask,
        "emailExchange:apiovh:service/account/tasks/get",
    ),
    r(
        "GET",
        p!("/domain"),
        Op::ListDomains,
        "emailExchange:apiovh:service/domain/get",
    ),
    r(
        "GET",
        p!("/domain/{domainName}"),
        Op::GetDomain,
        "emailExchange:apiovh:service/domain/get",
    ),
    r(
        "PUT",
        p!("/domain/{domainName}/changeDefaultSBR"),
        Op::ChangeDefaultSbr,
        "emailExchange:apiovh:service/domain/changeDefaultSBR",
    ),
    r(
        "GET",
        p!("/task"),
        Op::ListTasks,
        "emailExchange:apiovh:service/task/get",
    ),
    r(
        "GET",
        p!("/task/{id}"),
        Op::GetTask,
        "emailExchange:apiovh:service/task/get",
    ),
];

/// Decodes `%XX` escapes (not `+`) of one path segment.
pub fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The outcome of matching a path against the table.
pub enum Match {
    Found(&'static Route, Vec<String>),
    /// The path exists, not with this method.
    WrongMethod,
    NotFound,
}

/// Matches an API path (no `/1.0`, no query, still percent-encoded).
pub fn find(method: &str, raw_path: &str) -> Match {
    let segments: Vec<&str> = raw_path.trim_end_matches('/').split('/').collect();
    let mut path_exists = false;
    for route in ROUTES {
        let template: Vec<&str> = route.template.split('/').collect();
        if template.len() != segments.len() {
            continue;
        }
        let mut params = Vec::new();
        let matched = template.iter().zip(&segments).all(|(t, s)| {
            if t.starts_with('{') {
                params.push(percent_decode(s));
                !s.is_empty()
            } else {
                t == s
            }
        });
        if matched {
            if route.method == method {
                return Match::Found(route, params);
            }
            path_exists = true;
        }
    }
    if path_exists {
        Match::WrongMethod
    } else {
        Match::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_matches() {
        assert_eq!(percent_decode("a%40b.ovh"), "a@b.ovh");
        assert_eq!(percent_decode("a@b%2"), "a@b%2");
        let Match::Found(route, params) = find(
            "GET",
            "/email/exchange/org/service/svc/account/a%40b.ovh/tasks/5",
        ) else {
            panic!("no match");
        };
        assert_eq!(route.op, Op::GetAccountTask);
        assert_eq!(params, ["org", "svc", "a@b.ovh", "5"]);
        assert!(matches!(
            find("PATCH", "/email/exchange/org/service/svc/sendConnector/1"),
            Match::WrongMethod
        ));
        assert!(matches!(find("GET", "/me"), Match::NotFound));
        assert!(matches!(
            find("GET", "/email/exchange"),
            Match::Found(r, _) if r.op == Op::ListOrganizations
        ));
    }
}
