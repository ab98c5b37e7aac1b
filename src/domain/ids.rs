//! Validated identifiers and free text. A value of these types has passed the contract's
//! syntax rules, so nothing downstream re-checks (or forgets to check) them.

use serde::{Deserialize, Serialize};

use super::FieldViolation;

/// Longest user, staff, ticket or request id.
pub const MAX_ID_CHARS: usize = 128;
/// Longest free text (reasons, justifications).
pub const MAX_TEXT_CHARS: usize = 2_000;

/// An account id: `^[a-z0-9][a-z0-9_-]{0,62}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    /// Checks the syntax; `field` names the request field in the violation.
    pub fn parse(value: &str, field: &str) -> Result<Self, FieldViolation> {
        let mut chars = value.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if first_ok && rest_ok && value.len() <= 63 {
            Ok(Self(value.to_owned()))
        } else if value.is_empty() {
            Err(FieldViolation::new(field, "required"))
        } else {
            Err(FieldViolation::new(
                field,
                "must match ^[a-z0-9][a-z0-9_-]{0,62}$",
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a user, staff, ticket or request id: 1..128 printable characters (no control
/// characters, no surrounding whitespace that would make two ids look alike).
pub fn parse_printable_id(value: &str, field: &str) -> Result<String, FieldViolation> {
    if value.is_empty() {
        return Err(FieldViolation::new(field, "required"));
    }
    if value.chars().count() > MAX_ID_CHARS {
        return Err(FieldViolation::new(field, "at most 128 characters"));
    }
    if value
        .chars()
        .any(|c| c.is_control() || is_invisible(c) || (c.is_whitespace() && c != ' '))
        || value.trim() != value
        || value.chars().next().is_some_and(attaches_to_previous)
    {
        return Err(FieldViolation::new(
            field,
            "printable characters only (no control, zero-width or bidirectional formatting \
             characters, no space other than U+0020), no leading or trailing whitespace, not \
             starting with a combining mark",
        ));
    }
    Ok(value.to_owned())
}

/// Characters that render as nothing, as blank, or as nothing anyone can read, other than
/// ordinary spaces. By Unicode general category: format characters (Cf: zero-width
/// characters, bidirectional overrides, tag characters, shorthand and hieroglyph format
/// controls), line and paragraph separators (Zl, Zp), private-use (Co) and unassigned (Cn)
/// code points. Plus the blank characters of other categories: variation selectors, the
/// combining grapheme joiner, Hangul, halfwidth and Khitan fillers, the blank Braille
/// pattern, the null notehead, the object replacement character, Duployan selectors, Khmer
/// inherent vowels, Mongolian free variation selectors. In an id they make two different ids
/// look alike in the customer's access log (`staff\u{200B}1` shows as `staff1`), or make an
/// id display as another (`\u{202E}` reverses what follows).
pub fn is_invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        G::Format | G::LineSeparator | G::ParagraphSeparator | G::PrivateUse | G::Unassigned
    ) || matches!(
        c,
        '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFA0}'
            | '\u{FFFC}'
            | '\u{16FE4}'
            | '\u{1BC9D}'..='\u{1BC9E}'
            | '\u{1D159}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// Characters of `text` a reader actually sees, counted once per base character: not
/// whitespace, not invisible ([`is_invisible`]), and not what only attaches to the character
/// before it: combining marks (Mn, Mc, Me: `a` plus 25 accents is one character to a
/// reader), emoji skin-tone modifiers, Hangul medial vowel and final consonant jamo.
///
/// Emoji sequences count once: a character after a zero-width joiner joins the glyph before
/// it (👨‍👩‍👧 is one), and regional indicators count in pairs (a flag is two of them).
pub fn visible_chars(text: &str) -> usize {
    let (mut count, mut joined, mut regional) = (0, false, false);
    for c in text.chars() {
        let after_joiner = std::mem::replace(&mut joined, c == '\u{200D}');
        if c.is_whitespace() || is_invisible(c) || attaches_to_previous(c) || after_joiner {
            continue;
        }
        if ('\u{1F1E6}'..='\u{1F1FF}').contains(&c) {
            // The second indicator of a pair completes the first one's flag.
            regional = !regional;
            if !regional {
                continue;
            }
        } else {
            regional = false;
        }
        count += 1;
    }
    count
}

/// Characters that extend the glyph before them instead of standing on their own.
fn attaches_to_previous(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        G::NonspacingMark | G::SpacingMark | G::EnclosingMark
    ) || matches!(c, '\u{1160}'..='\u{11FF}' | '\u{D7B0}'..='\u{D7FF}' | '\u{1F3FB}'..='\u{1F3FF}')
}

/// Checks an optional idempotency key: empty means "none".
pub fn parse_request_id(value: &str, field: &str) -> Result<Option<String>, FieldViolation> {
    if value.is_empty() {
        Ok(None)
    } else {
        parse_printable_id(value, field).map(Some)
    }
}

/// Checks free text: at most 2,000 characters, no control characters but newlines and tabs.
pub fn parse_free_text(value: &str, field: &str) -> Result<String, FieldViolation> {
    if value.chars().count() > MAX_TEXT_CHARS {
        return Err(FieldViolation::new(field, "at most 2000 characters"));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(FieldViolation::new(
            field,
            "control characters are not allowed",
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_id_syntax() {
        for ok in ["a", "0", "acme", "acme-corp_1", &"a".repeat(63)] {
            assert!(AccountId::parse(ok, "f").is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "acme corp",
            "é",
            &"a".repeat(64),
            "a/b",
        ] {
            assert!(AccountId::parse(bad, "f").is_err(), "{bad}");
        }
    }

    #[test]
    fn printable_ids() {
        assert!(parse_printable_id("user-1@example.com", "f").is_ok());
        assert!(parse_printable_id(&"x".repeat(128), "f").is_ok());
        assert!(parse_printable_id(&"x".repeat(129), "f").is_err());
        assert!(parse_printable_id("a\u{0}b", "f").is_err());
        assert!(parse_printable_id("staff\u{200B}1", "f").is_err());
        assert!(parse_printable_id("\u{202E}1ffats", "f").is_err());
        assert!(parse_printable_id("\u{FEFF}staff", "f").is_err());
        assert!(parse_printable_id("sam\u{E0041}@vendor", "f").is_err());
        assert!(parse_printable_id("sam\u{2028}x", "f").is_err());
        assert!(parse_printable_id("sam\u{3164}", "f").is_err());
        assert!(parse_printable_id("sam\u{FE0F}", "f").is_err());
        // By category, not a list: shorthand and hieroglyph format controls, Arabic number
        // sign (all Cf), private use, unassigned.
        for c in [
            '\u{1BCA0}',
            '\u{1BCA3}',
            '\u{13430}',
            '\u{0600}',
            '\u{E000}',
            '\u{0378}',
        ] {
            assert!(
                parse_printable_id(&format!("s{c}m"), "f").is_err(),
                "U+{:04X}",
                u32::from(c)
            );
        }
        assert!(parse_printable_id("José Ñandú 山田 Ω", "f").is_ok());
        // Blank glyphs of other categories, look-alike spaces, a leading combining mark.
        for bad in [
            "sa\u{16FE4}m",
            "sa\u{1D159}m",
            "sa\u{FFFC}m",
            "sam\u{00A0}x",
            "sam\u{3000}x",
            "\u{0301}sam",
        ] {
            assert!(parse_printable_id(bad, "f").is_err(), "{bad:?}");
        }
        assert!(parse_printable_id("sam x", "f").is_ok());
        assert!(parse_printable_id("नमस्ते", "f").is_ok());
        assert_eq!(visible_chars("a\u{200B}\u{200B} b\u{3164}"), 2);
        // A glyph with combining marks is one character to a reader; private use is none.
        assert_eq!(visible_chars(&format!("a{}", "\u{0301}".repeat(25))), 1);
        assert_eq!(visible_chars(&"\u{1BCA0}".repeat(25)), 0);
        assert_eq!(visible_chars(&"\u{E000}".repeat(25)), 0);
        assert_eq!(visible_chars("é"), 1);
        assert_eq!(visible_chars("e\u{0301}"), 1);
        assert_eq!(visible_chars("日本語の文"), 5);
        // Spacing marks, skin-tone modifiers and medial jamo attach to what precedes them.
        assert_eq!(visible_chars(&"\u{0903}".repeat(20)), 0);
        assert_eq!(visible_chars(&"\u{1F3FB}".repeat(20)), 0);
        assert_eq!(visible_chars(&"\u{1161}".repeat(20)), 0);
        assert_eq!(visible_chars("नमस्ते"), 4); // न म स त; the virama and vowel sign attach
        assert_eq!(visible_chars("한국어"), 3);
        // Emoji sequences: a ZWJ family and a flag are one glyph each.
        assert_eq!(visible_chars(&"👨\u{200D}👩\u{200D}👧".repeat(7)), 7);
        assert_eq!(visible_chars(&"🇫🇷".repeat(10)), 10);
        assert_eq!(visible_chars("🇫🇷🇩"), 2);
        assert_eq!(visible_chars("a🇫b"), 3);
        assert!(parse_printable_id("zoë-müller", "f").is_ok());
        assert!(parse_printable_id(" a", "f").is_err());
        assert!(parse_printable_id("", "f").is_err());
    }
}
