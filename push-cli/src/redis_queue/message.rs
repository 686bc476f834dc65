//! The notification of a campaign, stored once in its hash as the `push send` flags that
//! describe it, and read back by every worker.

use std::collections::HashMap;

use crate::cli::MessageArgs;

/// The hash fields that describe `message`.
pub fn to_fields(message: &MessageArgs) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("title", message.title.clone()),
        ("body", message.body.clone()),
    ];
    if let Some(data) = &message.data {
        fields.push(("data", data.clone()));
    }
    if let Some(badge) = message.badge {
        fields.push(("badge", badge.to_string()));
    }
    if let Some(sound) = &message.sound {
        fields.push(("sound", sound.clone()));
    }
    fields
}

/// The notification of a campaign's hash; `None` when the hash has none (no such campaign).
pub fn from_fields(fields: &HashMap<String, String>) -> Result<Option<MessageArgs>, String> {
    let (Some(title), Some(body)) = (fields.get("title"), fields.get("body")) else {
        return Ok(None);
    };
    let badge = fields
        .get("badge")
        .map(|badge| badge.parse().map_err(|_| format!("bad badge {badge:?}")))
        .transpose()?;
    Ok(Some(MessageArgs {
        title: title.clone(),
        body: body.clone(),
        data: fields.get("data").cloned(),
        badge,
        sound: fields.get("sound").cloned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_goes_through_its_fields() {
        let message = MessageArgs {
            title: "Hi".into(),
            body: "there".into(),
            data: Some(r#"{"order":42}"#.into()),
            badge: Some(3),
            sound: None,
        };
        let fields: HashMap<String, String> = to_fields(&message)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let back = from_fields(&fields).unwrap().unwrap();
        assert_eq!(format!("{back:?}"), format!("{message:?}"));
        assert!(from_fields(&HashMap::new()).unwrap().is_none());
    }
}
