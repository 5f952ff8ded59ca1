//! Values that name environment variables: `${NAME}` in a header value, a
//! query value or a proxy URL is replaced by the variable's value when the
//! run resolves its endpoint, so keys stay out of shell history, manifests
//! and results (which record the template, never its expansion). `$${`
//! is a literal `${`; any other `$` is itself.

use super::SpecError;

/// `template` with every `${NAME}` replaced by `lookup(NAME)`; `what`
/// (e.g. `header X-Team`) names the value in errors, which never quote
/// the value itself nor a variable's value.
pub(crate) fn expand(
    what: &str,
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, SpecError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or_else(|| {
                SpecError::new(format!(
                    "{what} has a `${{` without its closing `}}`: write ${{NAME}} for the environment variable NAME, or $${{ for a literal ${{"
                ))
            })?;
            let name = &tail[..end];
            if !is_variable_name(name) {
                // Not quoted: text between the braces may be a key typed there.
                return Err(SpecError::new(format!(
                    "{what}: a `${{…}}` does not hold an environment variable's name (letters, digits and _, not starting with a digit); write $${{ for a literal ${{"
                )));
            }
            let value = lookup(name).ok_or_else(|| {
                SpecError::new(format!(
                    "{what} names the environment variable {name}, which is not set: set it (a .env file works), or write $${{ for a literal ${{"
                ))
            })?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks `template`'s `${…}` syntax without reading the environment.
pub(crate) fn check(what: &str, template: &str) -> Result<(), SpecError> {
    expand(what, template, |_| Some(String::new())).map(drop)
}

/// The environment variables `template` names, in order.
pub(crate) fn variables(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else { break };
            names.push(&tail[..end]);
            rest = &tail[end + 1..];
        } else {
            rest = &after[1..];
        }
    }
    names
}

/// The value of the environment variable `name`, if set (blank counts as
/// set: a header may be empty on purpose).
pub(crate) fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "TEAM" => Some("blue".into()),
            "KEY_2" => Some("sk-$ecret".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced_and_dollar_dollar_brace_is_a_literal() {
        let expand = |t: &str| expand("header X", t, vars).unwrap();
        assert_eq!(expand("${TEAM}"), "blue");
        assert_eq!(expand("Bearer ${KEY_2}!"), "Bearer sk-$ecret!");
        assert_eq!(expand("$${TEAM} costs $5 $$"), "${TEAM} costs $5 $$");
        assert_eq!(expand("${TEAM}-${TEAM}"), "blue-blue");
        assert_eq!(expand("plain"), "plain");
        assert_eq!(variables("a ${TEAM} $${NOT} ${KEY_2}"), ["TEAM", "KEY_2"]);
    }

    #[test]
    fn a_missing_variable_or_a_bad_reference_is_an_error_naming_it_not_the_value() {
        let error = expand("header X-Team", "${NOPE}", vars).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("header X-Team names the environment variable NOPE"),
            "{error}"
        );
        let error = check("header X", "secret ${TEAM").unwrap_err();
        assert!(error.to_string().contains("closing `}`"), "{error}");
        assert!(!error.to_string().contains("secret"), "{error}");
        let error = check("header X", "${sk-1A}").unwrap_err();
        assert!(
            error.to_string().contains("environment variable's name"),
            "{error}"
        );
        assert!(!error.to_string().contains("sk-1A"), "{error}");
        assert!(check("header X", "${}").is_err());
        assert!(check("header X", "ok ${A_1} $${").is_ok());
    }
}
