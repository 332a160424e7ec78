//! Rules for text that one player writes and others read: guild names,
//! guild descriptions and chat.
//!
//! Such text is shown on other players' screens, so what is stored must look
//! like what was typed and nothing more: no control characters (NUL, ANSI
//! escapes), no invisible or direction-changing format characters (zero-width
//! spaces, right-to-left overrides), no blank or filler characters passed off
//! as content. Text is stored in NFC, so that one spelling is one string, and
//! lengths count what users see (extended grapheme clusters), not code points
//! or bytes. Names are unique under [`fold_key`], Unicode's compatibility
//! caseless match, so "Café" typed two ways, or "Straße" and "STRASSE", are
//! one name.
//!
//! Architecture invariant: refused text is refused, never repaired (cut,
//! stripped) behind the writer's back; the error says what to change.

use caseless::Caseless;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};
use unicode_segmentation::UnicodeSegmentation;

/// What a kind of text must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    /// Names the text in errors ("a guild name").
    pub what: &'static str,
    /// Least length, in graphemes (0: may be empty).
    pub min: usize,
    /// Greatest length, in graphemes.
    pub max: usize,
    /// Multi-line text (chat, descriptions) may hold line feeds and any
    /// kind of space; a single-line name holds plain spaces only, never two
    /// in a row nor at either end, so that two names cannot differ by
    /// spacing alone.
    pub multiline: bool,
}

/// Code points in one grapheme at most: the longest emoji sequences in use
/// (families, flags of regions) have about ten; a pile of combining marks
/// ("zalgo" text) that spills over neighbouring lines has more.
pub const MAX_CODE_POINTS_PER_GRAPHEME: usize = 16;

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{what} has at most {max} characters, not {len}")]
    TooLong { what: &'static str, len: usize, max: usize },
    #[error("{what} has at least {min} characters, not {len}")]
    TooShort { what: &'static str, len: usize, min: usize },
    #[error("{what} may not contain {kind} (U+{code:04X})")]
    Forbidden { what: &'static str, kind: &'static str, code: u32 },
    #[error("{what} has nothing visible in it")]
    Invisible { what: &'static str },
    #[error("{what} has no space at either end and no two spaces in a row")]
    Spacing { what: &'static str },
    #[error("{what} has a character of more than {MAX_CODE_POINTS_PER_GRAPHEME} code points")]
    Overloaded { what: &'static str },
}

/// Checks `text` against `rule` and returns it in NFC, the form to store.
pub fn clean(rule: &TextRule, text: &str) -> Result<String, TextError> {
    let what = rule.what;
    let text: String = text.nfc().collect();
    let mut len = 0;
    for grapheme in text.graphemes(true) {
        len += 1;
        if len > rule.max {
            let len = text.graphemes(true).count();
            return Err(TextError::TooLong { what, len, max: rule.max });
        }
        check_grapheme(rule, grapheme)?;
    }
    if len < rule.min {
        return Err(TextError::TooShort { what, len, min: rule.min });
    }
    if len > 0 && !text.chars().any(|c| !c.is_whitespace()) {
        return Err(TextError::Invisible { what });
    }
    if !rule.multiline && (text.trim() != text || text.contains("  ")) {
        return Err(TextError::Spacing { what });
    }
    Ok(text)
}

/// One grapheme: every code point must be allowed where it stands.
fn check_grapheme(rule: &TextRule, grapheme: &str) -> Result<(), TextError> {
    let what = rule.what;
    let forbidden = |kind, c: char| Err(TextError::Forbidden { what, kind, code: c as u32 });
    let mut chars = grapheme.chars().peekable();
    let Some(base) = chars.peek().copied() else {
        return Ok(());
    };
    let emoji = base.is_emoji_char();
    let mut count = 0;
    while let Some(c) = chars.next() {
        count += 1;
        if count > MAX_CODE_POINTS_PER_GRAPHEME {
            return Err(TextError::Overloaded { what });
        }
        if INVISIBLE.contains(&c) {
            return forbidden("an invisible filler character", c);
        }
        match c.general_category() {
            GeneralCategory::Control if c == '\n' && rule.multiline => {}
            GeneralCategory::Control => return forbidden("a control character", c),
            // Inside an emoji sequence a joiner glues two pictures into one
            // and tag characters spell a region's flag; anywhere else they
            // are invisible.
            GeneralCategory::Format if emoji && c == '\u{200D}' && chars.peek().is_some_and(|n| n.is_emoji_char()) => {}
            GeneralCategory::Format if base == '\u{1F3F4}' && matches!(c, '\u{E0020}'..='\u{E007F}') => {}
            GeneralCategory::Format => return forbidden("an invisible or direction-changing format character", c),
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
                return forbidden("a line or paragraph separator", c)
            }
            GeneralCategory::SpaceSeparator if c != ' ' && !rule.multiline => {
                return forbidden("a space other than the plain space", c)
            }
            GeneralCategory::PrivateUse => return forbidden("a private-use character", c),
            GeneralCategory::Unassigned | GeneralCategory::Surrogate => return forbidden("an unassigned character", c),
            GeneralCategory::NonspacingMark | GeneralCategory::SpacingMark | GeneralCategory::EnclosingMark
                if count == 1 =>
            {
                return forbidden("a combining mark with nothing to combine with", c)
            }
            _ => {}
        }
    }
    Ok(())
}

/// Characters that draw nothing yet are not format characters: Hangul
/// fillers, the blank braille pattern, the combining grapheme joiner and
/// Khmer's inherent vowels. Names made of them look empty.
const INVISIBLE: [char; 8] =
    ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}', '\u{2800}', '\u{034F}', '\u{17B4}', '\u{17B5}'];

/// The key under which two names are the same name: Unicode's compatibility
/// caseless match (NFKD of the case fold of the NFKD of the case fold of the
/// NFD), so that case, composed or decomposed accents and compatibility
/// variants (full-width letters, ligatures) do not make a second name that
/// looks like the first. Prefixes fold the same way, so a name's key starts
/// with the key of any prefix a user would type.
pub fn fold_key(text: &str) -> String {
    text.chars().nfd().default_case_fold().nfkd().default_case_fold().nfkd().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: TextRule = TextRule { what: "a name", min: 3, max: 24, multiline: false };
    const CHAT: TextRule = TextRule { what: "a message", min: 1, max: 280, multiline: true };

    fn refused(rule: &TextRule, text: &str) -> TextError {
        clean(rule, text).expect_err(text)
    }

    #[test]
    fn plain_text_passes_in_nfc() {
        assert_eq!(clean(&NAME, "Cafe\u{301} Noir").unwrap(), "Caf\u{e9} Noir");
        assert_eq!(clean(&CHAT, "hi all\nready?").unwrap(), "hi all\nready?");
        assert_eq!(clean(&NAME, "東京ギルド").unwrap(), "東京ギルド");
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        assert!(matches!(refused(&NAME, "\u{200B}\u{200B}\u{200B}"), TextError::Forbidden { code: 0x200B, .. }));
        assert!(matches!(refused(&NAME, "abc\u{202E}def"), TextError::Forbidden { code: 0x202E, .. }));
        assert!(matches!(refused(&NAME, "\u{3164}\u{3164}\u{3164}"), TextError::Forbidden { code: 0x3164, .. }));
        assert!(matches!(refused(&CHAT, "hi\0"), TextError::Forbidden { code: 0, .. }));
        assert!(matches!(refused(&CHAT, "\u{1b}[31mred"), TextError::Forbidden { code: 0x1B, .. }));
        assert!(matches!(refused(&NAME, "a\nb c"), TextError::Forbidden { code: 0x0A, .. }));
        assert!(matches!(refused(&NAME, "ab\u{a0}cd"), TextError::Forbidden { code: 0xA0, .. }));
        assert!(matches!(refused(&NAME, "\u{301}abc"), TextError::Forbidden { code: 0x301, .. }));
        assert!(matches!(refused(&NAME, "abc\u{200D}"), TextError::Forbidden { code: 0x200D, .. }));
        assert!(matches!(refused(&CHAT, "   \n "), TextError::Invisible { .. }));
        assert!(matches!(refused(&NAME, " abc"), TextError::Spacing { .. }));
        assert!(matches!(refused(&NAME, "ab  c"), TextError::Spacing { .. }));
        assert!(matches!(refused(&NAME, &format!("a{}", "\u{301}".repeat(20))), TextError::Overloaded { .. }));
    }

    #[test]
    fn emoji_sequences_count_as_one_character() {
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        let scotland = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
        let name = format!("{family}{scotland}\u{1F1EB}\u{1F1F7}");
        assert_eq!(clean(&NAME, &name).unwrap(), name, "three pictures: a family, two flags");
        let too_long = "\u{1F600}".repeat(25);
        assert_eq!(refused(&NAME, &too_long), TextError::TooLong { what: "a name", len: 25, max: 24 });
        assert_eq!(refused(&NAME, "ab"), TextError::TooShort { what: "a name", len: 2, min: 3 });
    }

    #[test]
    fn the_fold_key_joins_names_that_look_alike() {
        assert_eq!(fold_key("Caf\u{e9}"), fold_key("Cafe\u{301}"));
        assert_eq!(fold_key("Stra\u{df}e"), fold_key("STRASSE"));
        assert_eq!(fold_key("\u{FF27}uild"), fold_key("guild"), "full-width G");
        assert_ne!(fold_key("Guild"), fold_key("Guilds"));
        assert!(fold_key("Caf\u{e9} Noir").starts_with(&fold_key("CAFE\u{301}")));
    }
}
