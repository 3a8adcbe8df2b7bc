//! Store URLs as they may be shown (banners, logs, error messages): the
//! password replaced by `***`, everything else kept so the text still says
//! which store it names.

/// What a hidden password is shown as.
const HIDDEN: &str = "***";

/// `url` with its passwords hidden: the one in `scheme://user:PASSWORD@host`
/// (read as tokio-postgres reads it: the user information runs to the first
/// `@`, the password from its first `:`), and the value of every
/// `password=` parameter, in a URL's query or in a `key=value` connection
/// string. `postgres://app:secret@db/orders?hub=x` becomes
/// `postgres://app:***@db/orders?hub=x`.
pub fn redact_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return redact_key_values(url);
    };
    let (head, rest) = url.split_at(start);
    let mut out = String::with_capacity(url.len());
    out.push_str(head);
    let rest = match rest.split_once('@') {
        Some((creds, after)) => {
            match creds.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(HIDDEN);
                }
                None => out.push_str(creds),
            }
            out.push('@');
            after
        }
        None => rest,
    };
    match rest.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k == "password" => format!("{k}={HIDDEN}"),
                    _ => kv.to_string(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(rest),
    }
    out
}

/// A `key=value` connection string (`host=db password=secret`) with every
/// `password` value hidden, quoted (`'...'`) or not.
fn redact_key_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("password") {
        let (before, after) = rest.split_at(i + "password".len());
        out.push_str(before);
        let at_key = match before[..i].chars().next_back() {
            Some(c) => c.is_whitespace(),
            None => true,
        };
        let value = after.trim_start();
        let Some(value) = value.strip_prefix('=').filter(|_| at_key) else {
            rest = after;
            continue;
        };
        let value = value.trim_start();
        out.push('=');
        out.push_str(HIDDEN);
        rest = match value.strip_prefix('\'') {
            Some(quoted) => quoted_end(quoted),
            None => value
                .find(char::is_whitespace)
                .map_or("", |end| &value[end..]),
        };
    }
    out.push_str(rest);
    out
}

/// What follows a quoted value whose opening quote was just read (`\'`
/// and `\\` escape).
fn quoted_end(s: &str) -> &str {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\'' => return &s[i + 1..],
            _ => {}
        }
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    /// (what the behaviour is, the URL, how it is shown)
    const CASES: &[(&str, &str, &str)] = &[
        (
            "a password in the user information is hidden",
            "postgres://app:secret@db.example/orders?hub=x",
            "postgres://app:***@db.example/orders?hub=x",
        ),
        (
            "a URL without a password is unchanged",
            "postgres://postgres@127.0.0.1:5432/test?sslmode=require",
            "postgres://postgres@127.0.0.1:5432/test?sslmode=require",
        ),
        (
            "a password holding `:` and `/` is hidden whole",
            "postgresql://app:a:b/c@host/db",
            "postgresql://app:***@host/db",
        ),
        (
            "an empty user name keeps its place",
            "postgres://:pw@host/db",
            "postgres://:***@host/db",
        ),
        (
            "a password= query parameter is hidden, others are kept",
            "postgres://app@host/db?password=secret&hub=x&sslmode=verify-full",
            "postgres://app@host/db?password=***&hub=x&sslmode=verify-full",
        ),
        (
            "both places at once",
            "postgres://app:one@host/db?password=two",
            "postgres://app:***@host/db?password=***",
        ),
        (
            "any scheme (a mistyped one is echoed in errors)",
            "postgress://app:secret@host/db",
            "postgress://app:***@host/db",
        ),
        (
            "URLs with no credentials at all are unchanged",
            "sqlite://perdure.db",
            "sqlite://perdure.db",
        ),
        (
            "a key=value connection string hides its password",
            "host=db user=app password=secret dbname=orders",
            "host=db user=app password=*** dbname=orders",
        ),
        (
            "a quoted key=value password is hidden whole",
            r"host=db password = 'a b\'c' dbname=orders",
            "host=db password=*** dbname=orders",
        ),
        (
            "a word that only contains `password` is not a key",
            "mypassword=x",
            "mypassword=x",
        ),
        ("memory is unchanged", "memory", "memory"),
    ];

    #[test]
    fn passwords_are_hidden() {
        for (what, url, shown) in CASES {
            assert_eq!(redact_url(url), *shown, "{what}");
        }
    }
}
