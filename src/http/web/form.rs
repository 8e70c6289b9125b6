//! Reading `application/x-www-form-urlencoded` bodies, where a name may repeat
//! (the permission checkboxes).

use crate::http::error::FieldError;

/// The fields of a submitted form, in order.
#[derive(Debug, Default)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// An unreadable body reads as an empty form: every field is then missing
    /// and the handler answers with its own messages.
    pub fn parse(body: &[u8]) -> Self {
        FormData(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }

    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn checked(&self, name: &str) -> bool {
        matches!(self.get(name), "yes" | "on" | "1" | "true")
    }
}

/// Messages for one field, keyed the way the templates ask for them.
#[derive(Debug, Default, Clone)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }

    /// Every message of `field`, joined.
    pub fn of(&self, field: &str) -> String {
        self.0
            .iter()
            .filter(|e| e.field == field)
            .map(|e| capitalise(&e.message))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Messages from the shared rules start in lower case (they are written to
/// follow a field name); on a form they stand alone.
pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The non-empty lines of a textarea, each with its 1-based line number.
pub fn lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().to_owned()))
        .filter(|(_, l)| !l.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_are_all_kept() {
        let f =
            FormData::parse(b"permissions=orders%3Aread&name=Zap+ier&permissions=clients%3Aread");
        assert_eq!(f.all("permissions"), ["orders:read", "clients:read"]);
        assert_eq!(f.get("name"), "Zap ier");
        assert_eq!(f.get("missing"), "");
    }

    #[test]
    fn blank_lines_are_skipped_but_numbered() {
        assert_eq!(
            lines("10.0.0.1\n\n  bad \n"),
            vec![(1, "10.0.0.1".into()), (3, "bad".into())]
        );
    }
}
