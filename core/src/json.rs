//! A small JSON reader for the core types, for builds where code size matters more than speed:
//! the visualizer's wasm.
//!
//! serde's derived decoders are generic over the deserializer, and serde_json builds its parser
//! into each of them: for the types the visualizer reads that came to about 108 KB, a third of
//! the wasm's budget. The readers here are plain code over one concrete [`JsonReader`], written
//! next to each type with [`json_struct!`] and [`json_enum!`].
//!
//! They take what serde_json takes and give the same value: an absent `Option` field is `None`,
//! unknown fields are skipped unless the type denies them, a unit variant may be `"name"` or
//! `{"name":null}`, a skipped value may nest as deep as the text allows and hold any `\u` escape.
//! They refuse what serde_json refuses: unknown variants, missing or duplicate fields, numbers
//! out of range, malformed text, trailing characters. One form serde_json also takes is refused
//! here: a struct written as an array of its field values (`[1,2,3]` for a `BallotView`). No
//! OmniKV process writes it, and serde's rules for it (an absent `Option` is an error there)
//! would double the readers. `core/tests/json_agreement.rs` holds both decoders to this on
//! generated values and on randomly edited frames. The nodes keep serde_json: it is faster, and
//! there size does not matter.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use crate::DecodeError;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("expected {expected} at byte {at}")]
    Syntax { at: usize, expected: &'static str },
    #[error("unknown field `{name}` at byte {at}")]
    UnknownField { at: usize, name: String },
    #[error("unknown variant `{name}` at byte {at}")]
    UnknownVariant { at: usize, name: String },
    #[error("duplicate field `{name}` at byte {at}")]
    DuplicateField { at: usize, name: &'static str },
    #[error("missing field `{name}` before byte {at}")]
    MissingField { at: usize, name: &'static str },
    #[error("number out of range at byte {at}")]
    OutOfRange { at: usize },
}

/// Decodes one JSON document of at most `limit` bytes into `T`.
pub fn decode<T: FromJson>(text: &str, limit: usize) -> Result<T, DecodeError> {
    if text.len() > limit {
        return Err(DecodeError::TooLarge {
            len: text.len(),
            limit,
        });
    }
    let mut reader = JsonReader::new(text);
    T::read(&mut reader)
        .and_then(|value| reader.finish().map(|()| value))
        .map_err(|e| DecodeError::Json(e.to_string()))
}

/// A type that [`JsonReader`] can decode.
pub trait FromJson: Sized {
    fn read(r: &mut JsonReader<'_>) -> Result<Self, JsonError>;

    /// The value of a field that is not there: an error, but `None` for an `Option` (serde's
    /// rule).
    fn absent(name: &'static str, at: usize) -> Result<Self, JsonError> {
        Err(JsonError::MissingField { at, name })
    }
}

/// The tag of an externally tagged enum, read by [`JsonReader::variant`].
pub struct VariantTag<'a> {
    pub name: Cow<'a, str>,
    /// Written `{"name": value}` rather than `"name"`.
    pub has_value: bool,
    /// Where the name starts, for errors.
    pub at: usize,
}

/// A pull reader over one JSON text. Every method skips the whitespace before its token.
///
/// Typed reading recurses only as deep as the types nest (a handful of levels); skipped values
/// are walked without recursion. So no input can exhaust the stack.
pub struct JsonReader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> JsonReader<'a> {
    pub fn new(text: &'a str) -> JsonReader<'a> {
        JsonReader { text, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Succeeds if only whitespace is left.
    pub fn finish(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.syntax("the end of the text")),
        }
    }

    pub fn syntax(&self, expected: &'static str) -> JsonError {
        JsonError::Syntax {
            at: self.pos,
            expected,
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    /// Consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.pos += usize::from(next);
        next
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), JsonError> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    fn word(&mut self, word: &'static str) -> Result<(), JsonError> {
        self.peek();
        if self.text.as_bytes()[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.syntax(word))
        }
    }

    pub fn null(&mut self) -> Result<(), JsonError> {
        self.word("null")
    }

    pub fn bool(&mut self) -> Result<bool, JsonError> {
        match self.peek() {
            Some(b't') => self.word("true").map(|()| true),
            Some(b'f') => self.word("false").map(|()| false),
            _ => Err(self.syntax("true or false")),
        }
    }

    /// An unsigned integer: no sign, fraction or exponent (serde_json refuses those for an
    /// unsigned field too).
    pub fn u64(&mut self) -> Result<u64, JsonError> {
        self.peek();
        self.digits()
    }

    fn digits(&mut self) -> Result<u64, JsonError> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut value: u64 = 0;
        while let Some(&b) = bytes.get(self.pos).filter(|b| b.is_ascii_digit()) {
            if self.pos > start && bytes[start] == b'0' {
                return Err(self.syntax("no leading zero"));
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or(JsonError::OutOfRange { at: start })?;
            self.pos += 1;
        }
        if self.pos == start || matches!(bytes.get(self.pos), Some(b'.' | b'e' | b'E')) {
            self.pos = start;
            return Err(self.syntax("an unsigned integer"));
        }
        Ok(value)
    }

    /// A string, borrowed from the text unless it holds escapes.
    pub fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.expect(b'"', "a string")?;
        let text = self.text;
        let bytes = text.as_bytes();
        let start = self.pos;
        let mut owned: Option<String> = None;
        let mut run = start;
        loop {
            let Some(&b) = bytes.get(self.pos) else {
                return Err(self.syntax("the end of the string"));
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(&text[start..self.pos - 1]),
                        Some(mut s) => {
                            s.push_str(&text[run..self.pos - 1]);
                            Cow::Owned(s)
                        }
                    });
                }
                b'\\' => {
                    owned
                        .get_or_insert_with(String::new)
                        .push_str(&text[run..self.pos]);
                    self.pos += 1;
                    let escaped = match bytes.get(self.pos).copied() {
                        Some(b'u') => {
                            self.pos += 1;
                            self.unicode_escape()?
                        }
                        letter => {
                            let c = letter
                                .and_then(short_escape)
                                .ok_or(self.syntax("an escape"))?;
                            self.pos += 1;
                            c
                        }
                    };
                    owned.get_or_insert_with(String::new).push(escaped);
                    run = self.pos;
                }
                0..=0x1f => return Err(self.syntax("no control character in a string")),
                _ => self.pos += 1,
            }
        }
    }

    /// The code point of `XXXX` (after `\u`), joining a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.text.as_bytes()[self.pos..].starts_with(b"\\u") {
                    return Err(self.syntax("a low surrogate"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.syntax("a low surrogate"));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.syntax("no lone low surrogate")),
            _ => first,
        };
        char::from_u32(code).ok_or(self.syntax("a code point"))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self.text.as_bytes().get(self.pos..self.pos + 4);
        let value = digits
            .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
            .and_then(|d| u32::from_str_radix(std::str::from_utf8(d).ok()?, 16).ok())
            .ok_or(self.syntax("four hex digits"))?;
        self.pos += 4;
        Ok(value)
    }

    /// Reads an object, handing each key to `field`, which reads the value and returns true, or
    /// returns false for a key it does not know: an error if `deny_unknown`, else skipped.
    pub fn object(
        &mut self,
        deny_unknown: bool,
        field: &mut dyn FnMut(&mut JsonReader<'a>, &str, usize) -> Result<bool, JsonError>,
    ) -> Result<(), JsonError> {
        self.expect(b'{', "an object")?;
        if !self.eat(b'}') {
            loop {
                self.peek();
                let at = self.pos;
                let key = self.string()?;
                self.expect(b':', "`:`")?;
                if !field(self, &key, at)? {
                    if deny_unknown {
                        return Err(JsonError::UnknownField {
                            at,
                            name: key.into_owned(),
                        });
                    }
                    self.skip()?;
                }
                if !self.eat(b',') {
                    self.expect(b'}', "`,` or `}`")?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Reads an array, calling `item` for each element.
    pub fn array(
        &mut self,
        item: &mut dyn FnMut(&mut JsonReader<'a>) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.expect(b'[', "an array")?;
        if !self.eat(b']') {
            loop {
                item(self)?;
                if !self.eat(b',') {
                    self.expect(b']', "`,` or `]`")?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Reads one field's value into its slot; a second value for the same field is an error.
    pub fn field<T: FromJson>(
        &mut self,
        slot: &mut Option<T>,
        name: &'static str,
        at: usize,
    ) -> Result<(), JsonError> {
        if slot.is_some() {
            return Err(JsonError::DuplicateField { at, name });
        }
        *slot = Some(T::read(self)?);
        Ok(())
    }

    /// The tag of an externally tagged enum: `"name"`, or `{"name": ` with the variant's value
    /// next, which [`JsonReader::end_variant`] closes after it is read.
    pub fn variant(&mut self) -> Result<VariantTag<'a>, JsonError> {
        let has_value = match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                self.peek();
                true
            }
            Some(b'"') => false,
            _ => return Err(self.syntax("a variant name or an object")),
        };
        let at = self.pos;
        let name = self.string()?;
        if has_value {
            self.expect(b':', "`:`")?;
        }
        Ok(VariantTag {
            name,
            has_value,
            at,
        })
    }

    pub fn end_variant(&mut self) -> Result<(), JsonError> {
        self.expect(b'}', "`}` after the variant")?;
        Ok(())
    }

    /// Skips one well-formed value of any kind. Like serde_json when it ignores a value, this
    /// checks the syntax only (a `\u` escape needs four hex digits, not a valid code point) and
    /// sets no bound on nesting: it walks the value with a stack of open brackets, which the
    /// text's length bounds, instead of recursing.
    pub fn skip(&mut self) -> Result<(), JsonError> {
        let mut open: Vec<u8> = Vec::new();
        loop {
            // A value starts here; a non-empty object or array leaves its first member next.
            let opened = match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    if self.eat(b'}') {
                        None
                    } else {
                        self.skip_string()?;
                        self.expect(b':', "`:`")?;
                        Some(b'{')
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    (!self.eat(b']')).then_some(b'[')
                }
                Some(b'"') => self.skip_string().map(|()| None)?,
                Some(b't' | b'f') => self.bool().map(|_| None)?,
                Some(b'n') => self.null().map(|()| None)?,
                _ => self.skip_number().map(|()| None)?,
            };
            if let Some(opener) = opened {
                open.push(opener);
                continue;
            }
            // A value ended: close what it ends, or move on to the next member.
            loop {
                let Some(&opener) = open.last() else {
                    return Ok(());
                };
                if self.eat(b',') {
                    if opener == b'{' {
                        self.skip_string()?;
                        self.expect(b':', "`:`")?;
                    }
                    break;
                }
                if opener == b'{' {
                    self.expect(b'}', "`,` or `}`")?;
                } else {
                    self.expect(b']', "`,` or `]`")?;
                }
                open.pop();
            }
        }
    }

    /// A string whose content is not needed: checked, not decoded.
    fn skip_string(&mut self) -> Result<(), JsonError> {
        self.expect(b'"', "a string")?;
        let bytes = self.text.as_bytes();
        loop {
            match bytes.get(self.pos) {
                None => return Err(self.syntax("the end of the string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match bytes.get(self.pos) {
                        Some(b'u') => {
                            self.pos += 1;
                            self.hex4()?;
                        }
                        Some(&e) if short_escape(e).is_some() => self.pos += 1,
                        _ => return Err(self.syntax("an escape")),
                    }
                }
                Some(0..=0x1f) => return Err(self.syntax("no control character in a string")),
                Some(_) => self.pos += 1,
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn skip_number(&mut self) -> Result<(), JsonError> {
        let bytes = self.text.as_bytes();
        let digits = |pos: &mut usize| {
            let start = *pos;
            while bytes.get(*pos).is_some_and(u8::is_ascii_digit) {
                *pos += 1;
            }
            *pos - start
        };
        let mut pos = self.pos;
        pos += usize::from(bytes.get(pos) == Some(&b'-'));
        let int_start = pos;
        let int_len = digits(&mut pos);
        let mut ok = int_len == 1 || (int_len > 1 && bytes[int_start] != b'0');
        if ok && bytes.get(pos) == Some(&b'.') {
            pos += 1;
            ok = digits(&mut pos) > 0;
        }
        if ok && matches!(bytes.get(pos), Some(b'e' | b'E')) {
            pos += 1;
            pos += usize::from(matches!(bytes.get(pos), Some(b'+' | b'-')));
            ok = digits(&mut pos) > 0;
        }
        if !ok {
            return Err(self.syntax("a value"));
        }
        self.pos = pos;
        Ok(())
    }
}

/// The character a one-letter escape (`\n`, `\"`, ...) stands for.
fn short_escape(letter: u8) -> Option<char> {
    Some(match letter {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        _ => return None,
    })
}

impl FromJson for u64 {
    fn read(r: &mut JsonReader<'_>) -> Result<Self, JsonError> {
        r.u64()
    }
}

impl FromJson for u32 {
    fn read(r: &mut JsonReader<'_>) -> Result<Self, JsonError> {
        r.peek();
        let at = r.pos;
        u32::try_from(r.u64()?).map_err(|_| JsonError::OutOfRange { at })
    }
}

impl FromJson for usize {
    fn read(r: &mut JsonReader<'_>) -> Result<Self, JsonError> {
        r.peek();
        let at = r.pos;
        usize::try_from(r.u64()?).map_err(|_| JsonError::OutOfRange { at })
    }
}

impl FromJson for bool {
    fn read(r: &mut JsonReader<'_>) -> Result<Self, JsonError> {
        r.bool()
    }
}

impl FromJson for String {
    fn read(r: &mut JsonReader<'_>) -> Result<Self, JsonError> {
        r.string().map(Cow::into_owned)
    }
}

impl<T: FromJson> FromJson for Option<T> {
    fn read(r: &mut JsonReader<'_>) -> Result<Self, JsonError> {
        if r.peek() == Some(b'n') {
            r.null().map(|()| None)
        } else {
            T::read(r).map(Some)
        }
    }

    fn absent(_: &'static str, _: usize) -> Result<Self, JsonError> {
        Ok(None)
    }
}

impl<T: FromJson> FromJson for Box<T> {
    fn read(r: &mut JsonReader<'_>) -> Result<Self, JsonError> {
        T::read(r).map(Box::new)
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn read(r: &mut JsonReader<'_>) -> Result<Self, JsonError> {
        let mut items = Vec::new();
        r.array(&mut |r| T::read(r).map(|item| items.push(item)))?;
        Ok(items)
    }
}

impl FromJson for BTreeSet<String> {
    fn read(r: &mut JsonReader<'_>) -> Result<Self, JsonError> {
        let mut items = BTreeSet::new();
        r.array(&mut |r| {
            items.insert(r.string()?.into_owned());
            Ok(())
        })?;
        Ok(items)
    }
}

/// A map key. serde_json writes integer keys as strings of digits.
pub trait JsonKey: Sized + Ord {
    /// The key `key` (unescaped), whose opening quote is at byte `at` of the text.
    fn from_key(r: &mut JsonReader<'_>, key: &str, at: usize) -> Result<Self, JsonError>;
}

impl JsonKey for String {
    fn from_key(_: &mut JsonReader<'_>, key: &str, _: usize) -> Result<Self, JsonError> {
        Ok(key.to_owned())
    }
}

impl JsonKey for u64 {
    fn from_key(r: &mut JsonReader<'_>, _: &str, at: usize) -> Result<Self, JsonError> {
        // The raw digits after the opening quote, as serde_json reads integer keys: an escape
        // is not a digit.
        let mut digits = JsonReader::new(r.text);
        digits.pos = at + 1;
        let value = digits.digits()?;
        if r.text.as_bytes().get(digits.pos) != Some(&b'"') {
            return Err(JsonError::Syntax {
                at: digits.pos,
                expected: "an integer key",
            });
        }
        Ok(value)
    }
}

impl<K: JsonKey, V: FromJson> FromJson for BTreeMap<K, V> {
    fn read(r: &mut JsonReader<'_>) -> Result<Self, JsonError> {
        let mut map = BTreeMap::new();
        r.object(false, &mut |r, key, at| {
            let key = K::from_key(r, key, at)?;
            map.insert(key, V::read(r)?);
            Ok(true)
        })?;
        Ok(map)
    }
}

/// Reads an object into a struct or struct variant: `json_fields!(reader, deny_unknown,
/// Path { field, field = default_expr, .. })`. A field with `= expr` takes that value when
/// absent (serde's `#[serde(default)]`).
#[macro_export]
macro_rules! json_fields {
    ($r:expr, $deny:expr, $($path:ident)::+ { $($field:ident $(= $default:expr)?),* $(,)? }) => {{
        $(let mut $field = None;)*
        $r.object($deny, &mut |__r, __key, __at| {
            $(if __key == stringify!($field) {
                __r.field(&mut $field, stringify!($field), __at)?;
                return Ok(true);
            })*
            Ok(false)
        })?;
        let __end = $r.pos();
        $($path)::+ {
            $($field: match $field {
                Some(v) => v,
                None => $crate::json_fields!(@absent $field __end $($default)?),
            },)*
        }
    }};
    (@absent $field:ident $end:ident) => {
        $crate::json::FromJson::absent(stringify!($field), $end)?
    };
    (@absent $field:ident $end:ident $default:expr) => {
        $default
    };
}

/// Implements [`FromJson`] for a struct: `json_struct!(Type { field, .. })`, or
/// `json_struct!(deny_unknown_fields Type { .. })` for a type that refuses unknown fields.
#[macro_export]
macro_rules! json_struct {
    (deny_unknown_fields $ty:ident $fields:tt) => {
        $crate::json_struct!(@impl true, $ty $fields);
    };
    ($ty:ident $fields:tt) => {
        $crate::json_struct!(@impl false, $ty $fields);
    };
    (@impl $deny:expr, $ty:ident { $($fields:tt)* }) => {
        impl $crate::json::FromJson for $ty {
            fn read(r: &mut $crate::json::JsonReader<'_>) -> Result<Self, $crate::json::JsonError> {
                Ok($crate::json_fields!(r, $deny, $ty { $($fields)* }))
            }
        }
    };
}

/// Implements [`FromJson`] for an externally tagged enum, one arm per variant with its wire
/// name: `"name" => Unit`, `"name" => Newtype(Type)`, `"name" => Struct { field, .. }`. Prefix
/// `deny_unknown_fields` for an enum whose struct variants refuse unknown fields.
#[macro_export]
macro_rules! json_enum {
    (deny_unknown_fields $ty:ident { $($arms:tt)* }) => {
        $crate::json_enum!(@impl true, $ty { $($arms)* });
    };
    ($ty:ident { $($arms:tt)* }) => {
        $crate::json_enum!(@impl false, $ty { $($arms)* });
    };
    (@impl $deny:expr, $ty:ident {
        $($name:literal => $variant:ident $(($($inner:tt)*))? $({$($fields:tt)*})?),* $(,)?
    }) => {
        impl $crate::json::FromJson for $ty {
            fn read(r: &mut $crate::json::JsonReader<'_>) -> Result<Self, $crate::json::JsonError> {
                // A variant without an arm here fails the build.
                #[allow(dead_code)]
                fn every_variant_has_an_arm(value: &$ty) {
                    match value {
                        $($ty::$variant { .. } => {})*
                    }
                }
                let tag = r.variant()?;
                let has_value = tag.has_value;
                let value = match &*tag.name {
                    $($name => $crate::json_enum!(
                        @variant r, has_value, $deny, $ty $variant
                        $(($($inner)*))? $({$($fields)*})?
                    ),)*
                    _ => {
                        return Err($crate::json::JsonError::UnknownVariant {
                            at: tag.at,
                            name: tag.name.into_owned(),
                        })
                    }
                };
                if has_value {
                    r.end_variant()?;
                }
                Ok(value)
            }
        }
    };
    // A unit variant is a bare string; serde_json also takes `{"name": null}`.
    (@variant $r:ident, $has_value:ident, $deny:expr, $ty:ident $variant:ident) => {{
        if $has_value {
            $r.null()?;
        }
        $ty::$variant
    }};
    (@variant $r:ident, $has_value:ident, $deny:expr, $ty:ident $variant:ident ($inner:ty)) => {{
        if !$has_value {
            return Err($r.syntax("an object holding the variant's value"));
        }
        $ty::$variant(<$inner as $crate::json::FromJson>::read($r)?)
    }};
    (@variant $r:ident, $has_value:ident, $deny:expr, $ty:ident $variant:ident { $($fields:tt)* }) => {{
        if !$has_value {
            return Err($r.syntax("an object holding the variant's fields"));
        }
        $crate::json_fields!($r, $deny, $ty::$variant { $($fields)* })
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: FromJson>(text: &str) -> Result<T, JsonError> {
        let mut r = JsonReader::new(text);
        let value = T::read(&mut r)?;
        r.finish()?;
        Ok(value)
    }

    #[test]
    fn strings_unescape_like_json() {
        assert_eq!(
            read::<String>(r#" "a\"b\\c\/\n\t\u00e9\ud83d\ude00" "#).unwrap(),
            "a\"b\\c/\n\té😀"
        );
        assert_eq!(read::<String>(r#""plain""#).unwrap(), "plain");
        for bad in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\x""#,
            "\"a\u{1}\"",
            r#""open"#,
            r#""\u12""#,
        ] {
            assert!(read::<String>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unsigned_integers_are_strict() {
        assert_eq!(read::<u64>("18446744073709551615").unwrap(), u64::MAX);
        assert_eq!(read::<u64>(" 0 ").unwrap(), 0);
        for bad in [
            "18446744073709551616",
            "01",
            "-1",
            "1.0",
            "1e3",
            "",
            "x",
            "1 2",
        ] {
            assert!(read::<u64>(bad).is_err(), "{bad}");
        }
        assert!(read::<u32>("4294967296").is_err());
    }

    #[test]
    fn skipping_checks_the_skipped_value() {
        let mut r = JsonReader::new(r#"{"a":[1,-2.5e+3,{"b":null}],"c":true} x"#);
        r.skip().unwrap();
        assert!(r.finish().is_err());
        for bad in ["[1,]", "{\"a\":}", "01", "1.", "-", "[1 2]", "{\"a\" 1}"] {
            assert!(JsonReader::new(bad).skip().is_err(), "{bad}");
        }
    }

    #[test]
    fn skipping_walks_any_depth_without_recursion() {
        let deep = "[{\"a\":".repeat(100_000) + "1" + &"}]".repeat(100_000);
        JsonReader::new(&deep).skip().unwrap();
        let unbalanced = "[".repeat(100_000) + &"]".repeat(99_999);
        assert!(JsonReader::new(&unbalanced).skip().is_err());
        // Skipped strings are checked, not decoded: a lone surrogate is fine there.
        let mut r = JsonReader::new(r#"{"\udc00":["\ud800"]}"#);
        r.skip().unwrap();
        r.finish().unwrap();
        for bad in [
            r#"["\u12"]"#,
            r#"{"a":"\x"}"#,
            "[\"\u{1}\"]",
            r#"{"a" "b"}"#,
            r#"{1:2}"#,
        ] {
            assert!(JsonReader::new(bad).skip().is_err(), "{bad}");
        }
    }

    #[test]
    fn integer_map_keys_are_read_from_their_digits() {
        let map: BTreeMap<u64, u64> = read(r#"{"1":2,"18446744073709551615":3}"#).unwrap();
        assert_eq!(map, BTreeMap::from([(1, 2), (u64::MAX, 3)]));
        for bad in [r#"{"x":1}"#, r#"{"1x":1}"#, r#"{"":1}"#, r#"{"01":1}"#] {
            assert!(read::<BTreeMap<u64, u64>>(bad).is_err(), "{bad}");
        }
    }
}
