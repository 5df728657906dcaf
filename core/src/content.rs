//! Rich content: what a message carries beyond plain text (RCS rich cards, carousels,
//! media, suggested replies and actions), checked against Google RBM's published limits
//! so that a bad message is refused at the API with the field named, not by the carrier.

use serde::{Deserialize, Serialize};

/// RBM limits (developers.google.com/business-communications/rcs-business-messaging).
pub mod limits {
    pub const TEXT: usize = 3072;
    pub const SUGGESTIONS: usize = 11;
    pub const CARD_SUGGESTIONS: usize = 4;
    pub const CHIP_TEXT: usize = 25;
    pub const POSTBACK: usize = 2048;
    pub const TITLE: usize = 200;
    pub const DESCRIPTION: usize = 2000;
    pub const CAROUSEL_MIN: usize = 2;
    pub const CAROUSEL_MAX: usize = 10;
    pub const URL: usize = 2048;
    pub const EVENT_TITLE: usize = 100;
    pub const EVENT_DESCRIPTION: usize = 500;
}

/// A message's content and its suggestion chips, as stored with the message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RichMessage {
    pub content: Content,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<Suggestion>,
}

/// `content: {text} | {card: {...}} | {carousel: [...]} | {media: {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Content {
    Text(String),
    Card(Card),
    Carousel(Vec<Card>),
    /// A file by URL (image, video, PDF ...), shown on its own.
    Media(Media),
}

#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    /// `vertical` (default) or `horizontal`; standalone cards only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orientation: Option<Orientation>,
    /// Where the image sits in a horizontal card: `left` (default) or `right`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_alignment: Option<Alignment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<Suggestion>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Media {
    /// Public http(s) URL of the file.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    /// `short`, `medium` (default) or `tall` (cards only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<MediaHeight>,
    /// RCS: upload the file to RBM once (`files.create`) and send it by its RBM name,
    /// instead of RBM fetching the URL for every message (media messages only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub upload: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Orientation {
    Vertical,
    Horizontal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alignment {
    Left,
    Right,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaHeight {
    Short,
    Medium,
    Tall,
}

/// A suggested reply or action chip. `postback_data` comes back with the user's tap;
/// it defaults to the chip text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Suggestion {
    Reply {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        postback_data: Option<String>,
    },
    OpenUrl {
        text: String,
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        postback_data: Option<String>,
    },
    Dial {
        text: String,
        phone_number: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        postback_data: Option<String>,
    },
    ViewLocation {
        text: String,
        latitude: f64,
        longitude: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        postback_data: Option<String>,
    },
    CalendarEvent {
        text: String,
        /// RFC 3339.
        start_time: String,
        end_time: String,
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        postback_data: Option<String>,
    },
    ShareLocation {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        postback_data: Option<String>,
    },
}

impl Suggestion {
    pub fn text(&self) -> &str {
        match self {
            Suggestion::Reply { text, .. }
            | Suggestion::OpenUrl { text, .. }
            | Suggestion::Dial { text, .. }
            | Suggestion::ViewLocation { text, .. }
            | Suggestion::CalendarEvent { text, .. }
            | Suggestion::ShareLocation { text, .. } => text,
        }
    }

    pub fn postback_data(&self) -> &str {
        let p = match self {
            Suggestion::Reply { postback_data, .. }
            | Suggestion::OpenUrl { postback_data, .. }
            | Suggestion::Dial { postback_data, .. }
            | Suggestion::ViewLocation { postback_data, .. }
            | Suggestion::CalendarEvent { postback_data, .. }
            | Suggestion::ShareLocation { postback_data, .. } => postback_data,
        };
        p.as_deref().unwrap_or(self.text())
    }

    /// The RBM capability feature a device needs for this chip (replies need none).
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            Suggestion::Reply { .. } => None,
            Suggestion::OpenUrl { .. } => Some("ACTION_OPEN_URL"),
            Suggestion::Dial { .. } => Some("ACTION_DIAL"),
            Suggestion::ViewLocation { .. } => Some("ACTION_VIEW_LOCATION"),
            Suggestion::CalendarEvent { .. } => Some("ACTION_CREATE_CALENDAR_EVENT"),
            Suggestion::ShareLocation { .. } => Some("ACTION_SHARE_LOCATION"),
        }
    }
}

/// A content error: the field (relative to the message, e.g.
/// `content.carousel[2].title`) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ContentError {
    ContentError {
        field: field.into(),
        message: message.into(),
    }
}

fn max_chars(field: &str, v: &str, max: usize) -> Result<(), ContentError> {
    if v.chars().count() > max {
        return Err(err(field, format!("must be at most {max} characters")));
    }
    Ok(())
}

fn non_empty(field: &str, v: &str, max: usize) -> Result<(), ContentError> {
    if v.trim().is_empty() {
        return Err(err(field, "must not be empty"));
    }
    max_chars(field, v, max)
}

/// An absolute http(s) URL without whitespace.
pub fn is_http_url(u: &str) -> bool {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && !r.starts_with('/')
            && u.len() <= limits::URL
            && !u.contains(char::is_whitespace)
    })
}

fn url(field: &str, u: &str) -> Result<(), ContentError> {
    if !is_http_url(u) {
        return Err(err(
            field,
            format!(
                "must be an http(s) URL of at most {} characters",
                limits::URL
            ),
        ));
    }
    Ok(())
}

/// RFC 3339 `YYYY-MM-DDTHH:MM:SS[.f](Z|±HH:MM)`, compared as text after a shape check.
fn rfc3339(field: &str, v: &str) -> Result<(), ContentError> {
    let b = v.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let ok = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (v.ends_with('Z') || v.ends_with('z') || v[19..].contains(['+', '-']));
    if !ok {
        return Err(err(
            field,
            "must be an RFC 3339 time, e.g. 2026-12-01T09:00:00Z",
        ));
    }
    Ok(())
}

fn suggestions(prefix: &str, list: &[Suggestion], max: usize) -> Result<(), ContentError> {
    if list.len() > max {
        return Err(err(
            prefix,
            format!("at most {max} suggestions are allowed here"),
        ));
    }
    for (i, s) in list.iter().enumerate() {
        let p = format!("{prefix}[{i}]");
        let kind = match s {
            Suggestion::Reply { .. } => "reply",
            Suggestion::OpenUrl { .. } => "open_url",
            Suggestion::Dial { .. } => "dial",
            Suggestion::ViewLocation { .. } => "view_location",
            Suggestion::CalendarEvent { .. } => "calendar_event",
            Suggestion::ShareLocation { .. } => "share_location",
        };
        let f = |name: &str| format!("{p}.{kind}.{name}");
        non_empty(&f("text"), s.text(), limits::CHIP_TEXT)?;
        max_chars(&f("postback_data"), s.postback_data(), limits::POSTBACK)?;
        match s {
            Suggestion::OpenUrl { url: u, .. } => url(&f("url"), u)?,
            Suggestion::Dial { phone_number, .. } => {
                let d = phone_number.strip_prefix('+').unwrap_or("");
                if !(3..=15).contains(&d.len()) || !d.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err(
                        f("phone_number"),
                        "must be an E.164 number (+ and digits)",
                    ));
                }
            }
            Suggestion::ViewLocation {
                latitude,
                longitude,
                label,
                ..
            } => {
                if !(-90.0..=90.0).contains(latitude) {
                    return Err(err(f("latitude"), "must be between -90 and 90"));
                }
                if !(-180.0..=180.0).contains(longitude) {
                    return Err(err(f("longitude"), "must be between -180 and 180"));
                }
                if let Some(l) = label {
                    max_chars(&f("label"), l, limits::TITLE)?;
                }
            }
            Suggestion::CalendarEvent {
                start_time,
                end_time,
                title,
                description,
                ..
            } => {
                rfc3339(&f("start_time"), start_time)?;
                rfc3339(&f("end_time"), end_time)?;
                non_empty(&f("title"), title, limits::EVENT_TITLE)?;
                if let Some(d) = description {
                    max_chars(&f("description"), d, limits::EVENT_DESCRIPTION)?;
                }
            }
            Suggestion::Reply { .. } | Suggestion::ShareLocation { .. } => {}
        }
    }
    Ok(())
}

fn media(prefix: &str, m: &Media, in_card: bool) -> Result<(), ContentError> {
    url(&format!("{prefix}.url"), &m.url)?;
    if let Some(t) = &m.thumbnail_url {
        url(&format!("{prefix}.thumbnail_url"), t)?;
    }
    if !in_card && m.height.is_some() {
        return Err(err(
            format!("{prefix}.height"),
            "height applies to media in a card only",
        ));
    }
    if in_card && m.upload {
        return Err(err(
            format!("{prefix}.upload"),
            "upload applies to a media message only, not to media in a card",
        ));
    }
    Ok(())
}

fn card(prefix: &str, c: &Card, in_carousel: bool) -> Result<(), ContentError> {
    if c.title.is_none() && c.description.is_none() && c.media.is_none() {
        return Err(err(
            prefix,
            "a card needs at least a title, a description or media",
        ));
    }
    if let Some(t) = &c.title {
        non_empty(&format!("{prefix}.title"), t, limits::TITLE)?;
    }
    if let Some(d) = &c.description {
        non_empty(&format!("{prefix}.description"), d, limits::DESCRIPTION)?;
    }
    if let Some(m) = &c.media {
        media(&format!("{prefix}.media"), m, true)?;
    }
    if in_carousel && (c.orientation.is_some() || c.image_alignment.is_some()) {
        return Err(err(
            format!("{prefix}.orientation"),
            "orientation and image_alignment apply to standalone cards only",
        ));
    }
    if c.orientation == Some(Orientation::Horizontal) && c.media.is_none() {
        return Err(err(
            format!("{prefix}.orientation"),
            "a horizontal card needs media",
        ));
    }
    suggestions(
        &format!("{prefix}.suggestions"),
        &c.suggestions,
        limits::CARD_SUGGESTIONS,
    )
}

impl RichMessage {
    /// Checks every RBM limit; the error names the first offending field.
    pub fn validate(&self) -> Result<(), ContentError> {
        match &self.content {
            Content::Text(t) => non_empty("content.text", t, limits::TEXT)?,
            Content::Card(c) => card("content.card", c, false)?,
            Content::Carousel(cards) => {
                if !(limits::CAROUSEL_MIN..=limits::CAROUSEL_MAX).contains(&cards.len()) {
                    return Err(err(
                        "content.carousel",
                        format!(
                            "a carousel holds {} to {} cards",
                            limits::CAROUSEL_MIN,
                            limits::CAROUSEL_MAX
                        ),
                    ));
                }
                for (i, c) in cards.iter().enumerate() {
                    card(&format!("content.carousel[{i}]"), c, true)?;
                }
            }
            Content::Media(m) => media("content.media", m, false)?,
        }
        suggestions("suggestions", &self.suggestions, limits::SUGGESTIONS)
    }

    /// The RBM capability features a device needs to show this message as it is.
    pub fn features(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut chips: Vec<&Suggestion> = Vec::new();
        match &self.content {
            Content::Card(c) => {
                out.push("RICHCARD_STANDALONE");
                chips.extend(&c.suggestions);
            }
            Content::Carousel(cards) => {
                out.push("RICHCARD_CAROUSEL");
                chips.extend(cards.iter().flat_map(|c| &c.suggestions));
            }
            Content::Text(_) | Content::Media(_) => {}
        }
        chips.extend(&self.suggestions);
        for f in chips.into_iter().filter_map(Suggestion::feature) {
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }

    /// The richest form of this message that a device with `supports` can show: a
    /// carousel becomes its first card as a standalone card, then plain text; chips
    /// the device cannot show are dropped. `None` when the message already fits.
    pub fn degrade(&self, supports: impl Fn(&str) -> bool) -> Option<RichMessage> {
        let fits = |m: &RichMessage| m.features().iter().all(|f| supports(f));
        if fits(self) {
            return None;
        }
        let mut forms = Vec::new();
        if let Content::Carousel(cards) = &self.content
            && let Some(first) = cards.first()
        {
            forms.push(RichMessage {
                content: Content::Card(Card {
                    orientation: None,
                    image_alignment: None,
                    ..first.clone()
                }),
                suggestions: self.suggestions.clone(),
            });
        }
        forms.push(RichMessage {
            content: Content::Text(self.plain_text()),
            suggestions: self.suggestions.clone(),
        });
        forms.push(RichMessage {
            content: Content::Text(self.plain_text()),
            suggestions: Vec::new(),
        });
        forms.into_iter().find(fits)
    }

    /// Readable plain text for channels without rich content (SMS): the text, or each
    /// card's title and description, then the links of URL actions.
    pub fn plain_text(&self) -> String {
        let mut lines: Vec<String> = Vec::new();
        let mut chips: Vec<&Suggestion> = Vec::new();
        let cards: &[Card] = match &self.content {
            Content::Text(t) => {
                lines.push(t.clone());
                &[]
            }
            Content::Card(c) => std::slice::from_ref(c),
            Content::Carousel(cards) => cards,
            Content::Media(m) => {
                lines.push(m.url.clone());
                &[]
            }
        };
        for c in cards {
            lines.extend(c.title.iter().cloned());
            lines.extend(c.description.iter().cloned());
            chips.extend(&c.suggestions);
        }
        chips.extend(&self.suggestions);
        for s in chips {
            match s {
                Suggestion::OpenUrl { text, url, .. } => lines.push(format!("{text}: {url}")),
                Suggestion::Dial {
                    text, phone_number, ..
                } => lines.push(format!("{text}: {phone_number}")),
                _ => {}
            }
        }
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> RichMessage {
        serde_json::from_value(v).unwrap()
    }

    fn reply(t: &str) -> serde_json::Value {
        serde_json::json!({"reply": {"text": t}})
    }

    #[test]
    fn card_with_suggestions_is_valid_and_needs_its_features() {
        let m = parse(serde_json::json!({
            "content": {"card": {
                "title": "Order #1234 shipped",
                "description": "Arrives Tuesday",
                "media": {"url": "https://example.com/box.png", "height": "medium"},
                "suggestions": [{"open_url": {"text": "Track", "url": "https://example.com/t/1234"}}]
            }},
            "suggestions": [reply("Thanks"), {"dial": {"text": "Call us", "phone_number": "+442071234567"}}]
        }));
        m.validate().unwrap();
        assert_eq!(
            m.features(),
            vec!["RICHCARD_STANDALONE", "ACTION_OPEN_URL", "ACTION_DIAL"]
        );
        assert_eq!(
            m.plain_text(),
            "Order #1234 shipped\nArrives Tuesday\nTrack: https://example.com/t/1234\nCall us: +442071234567"
        );
    }

    #[test]
    fn limits_name_the_field() {
        let long = "x".repeat(26);
        let cases = [
            (
                serde_json::json!({"content": {"text": "hi"}, "suggestions": [reply(&long)]}),
                "suggestions[0].reply.text",
            ),
            (
                serde_json::json!({"content": {"text": "hi"}, "suggestions": vec![reply("a"); 12]}),
                "suggestions",
            ),
            (
                serde_json::json!({"content": {"card": {"title": "t", "suggestions": vec![reply("a"); 5]}}}),
                "content.card.suggestions",
            ),
            (
                serde_json::json!({"content": {"card": {"title": "x".repeat(201)}}}),
                "content.card.title",
            ),
            (
                serde_json::json!({"content": {"card": {"description": "x".repeat(2001)}}}),
                "content.card.description",
            ),
            (
                serde_json::json!({"content": {"carousel": [{"title": "only one"}]}}),
                "content.carousel",
            ),
            (
                serde_json::json!({"content": {"carousel": vec![serde_json::json!({"title": "t"}); 11]}}),
                "content.carousel",
            ),
            (
                serde_json::json!({"content": {"carousel": [{"title": "a"}, {"media": {"url": "ftp://x"}}]}}),
                "content.carousel[1].media.url",
            ),
            (serde_json::json!({"content": {"card": {}}}), "content.card"),
            (
                serde_json::json!({"content": {"text": "hi"}, "suggestions": [{"calendar_event": {
                    "text": "Add", "start_time": "tomorrow", "end_time": "2026-12-01T10:00:00Z", "title": "Visit"}}]}),
                "suggestions[0].calendar_event.start_time",
            ),
            (
                serde_json::json!({"content": {"text": "hi"}, "suggestions": [{"view_location": {
                    "text": "Map", "latitude": 91.0, "longitude": 0.0}}]}),
                "suggestions[0].view_location.latitude",
            ),
            (serde_json::json!({"content": {"text": ""}}), "content.text"),
        ];
        for (v, field) in cases {
            let e = parse(v.clone()).validate().unwrap_err();
            assert_eq!(e.field, field, "{v}: {}", e.message);
        }
    }

    #[test]
    fn carousel_features_and_text() {
        let m = parse(serde_json::json!({"content": {"carousel": [
            {"title": "A", "description": "first"},
            {"title": "B", "suggestions": [{"share_location": {"text": "Where?"}}]}
        ]}}));
        m.validate().unwrap();
        assert_eq!(
            m.features(),
            vec!["RICHCARD_CAROUSEL", "ACTION_SHARE_LOCATION"]
        );
        assert_eq!(m.plain_text(), "A\nfirst\nB");
        let s = &m.suggestions;
        assert!(s.is_empty());
    }

    #[test]
    fn a_carousel_degrades_to_a_card_then_to_text() {
        let m = parse(serde_json::json!({"content": {"carousel": [
            {"title": "Red", "description": "A red shirt", "suggestions": [{"open_url": {"text": "Buy", "url": "https://shop.example/red"}}]},
            {"title": "Blue"}
        ]}}));
        let all = |_: &str| true;
        assert_eq!(m.degrade(all), None);
        let no_carousel = |f: &str| f != "RICHCARD_CAROUSEL";
        let card = m.degrade(no_carousel).unwrap();
        let Content::Card(c) = &card.content else {
            panic!("{card:?}")
        };
        assert_eq!(c.title.as_deref(), Some("Red"));
        let nothing = |_: &str| false;
        let text = m.degrade(nothing).unwrap();
        assert_eq!(
            text.content,
            Content::Text("Red\nA red shirt\nBlue\nBuy: https://shop.example/red".into())
        );
    }
}
