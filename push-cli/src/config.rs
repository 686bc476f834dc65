//! From command-line arguments to a configured client and payload.

use std::path::Path;

use push_smol::{
    ApnsConfig, ApnsHttp2Config, Client, FcmConfig, GcmConfig, HttpConfig, Payload, Tls,
};

use crate::change::ProviderNames;
use crate::cli::{ApnsArgs, FcmArgs, GcmArgs, MessageArgs, ProviderArgs};

/// The notification described by the arguments; `--data` must be a JSON object.
pub fn payload(message: &MessageArgs) -> Result<Payload, String> {
    let mut payload = Payload::new().title(&message.title).body(&message.body);
    if let Some(data) = &message.data {
        let value: serde_json::Value = serde_json::from_str(data)
            .map_err(|error| format!("--data is not valid JSON: {error}"))?;
        let serde_json::Value::Object(map) = value else {
            return Err("--data must be a JSON object, such as '{\"order\":42}'".into());
        };
        for (key, value) in map {
            payload = payload.data(key, value);
        }
    }
    if let Some(badge) = message.badge {
        payload = payload.badge(badge);
    }
    if let Some(sound) = &message.sound {
        payload = payload.sound(sound);
    }
    Ok(payload)
}

/// TLS settings: with `ca`, trust only that CA; with `identity`, present that certificate
/// and key.
pub fn tls(ca: Option<&Path>, identity: Option<(&Path, &Path)>) -> Result<Tls, String> {
    let mut tls = Tls::default();
    if let Some(ca) = ca {
        tls = tls
            .add_ca_file(ca)
            .map_err(|e| e.to_string())?
            .only_custom_roots();
    }
    if let Some((cert, key)) = identity {
        tls = tls
            .client_identity_files(cert, key)
            .map_err(|e| e.to_string())?;
    }
    Ok(tls)
}

/// APNs settings from the arguments, if `--apns` was given.
pub fn apns(args: &ApnsArgs) -> Result<Option<ApnsConfig>, String> {
    let Some(gateway) = &args.apns else {
        return Ok(None);
    };
    let (Some(cert), Some(key)) = (&args.apns_cert, &args.apns_key) else {
        return Err("--apns needs --apns-cert and --apns-key".into());
    };
    let tls = tls(args.apns_ca.as_deref(), Some((cert, key)))?;
    let config = ApnsConfig::new(gateway).map_err(|e| e.to_string())?;
    Ok(Some(config.tls(tls).checkpoints(args.apns_checkpoints)))
}

/// GCM settings from the arguments, if `--gcm-url` was given. The key is never shown.
pub fn gcm(args: &GcmArgs) -> Result<Option<GcmConfig>, String> {
    let Some(url) = &args.gcm_url else {
        return Ok(None);
    };
    let Some(key) = args.gcm_key.as_deref().filter(|key| !key.is_empty()) else {
        return Err("--gcm-url needs --gcm-key or the PUSH_GCM_KEY environment variable".into());
    };
    let mut config = GcmConfig::new(key)
        .endpoint(url)
        .map_err(|e| e.to_string())?
        .tls(tls(args.gcm_ca.as_deref(), None)?);
    if let Some(batch) = args.gcm_batch {
        config = config.batch_size(batch).map_err(|e| e.to_string())?;
    }
    Ok(Some(config))
}

/// APNs HTTP/2 settings from the arguments, if `--apns-url` was given: token auth with
/// `--apns-key-p8` (the key is never shown), else certificate auth.
pub fn apns_http2(args: &ApnsArgs) -> Result<Option<ApnsHttp2Config>, String> {
    let Some(url) = &args.apns_url else {
        return Ok(None);
    };
    let mut config = ApnsHttp2Config::new(url).map_err(|e| e.to_string())?;
    if let Some(topic) = &args.apns_topic {
        config = config.topic(topic);
    }
    let identity = match (&args.apns_key_p8, &args.apns_cert, &args.apns_key) {
        (Some(p8), _, _) => {
            let (Some(key_id), Some(team_id)) = (&args.apns_key_id, &args.apns_team_id) else {
                return Err("--apns-key-p8 needs --apns-key-id and --apns-team-id".into());
            };
            config = config
                .provider_key_file(p8, key_id, team_id)
                .map_err(|e| e.to_string())?;
            None
        }
        (None, Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        _ => {
            return Err("--apns-url needs --apns-key-p8 with --apns-key-id and --apns-team-id (token auth), or --apns-cert and --apns-key (certificate auth)".into());
        }
    };
    let tls = tls(args.apns_ca.as_deref(), identity)?;
    Ok(Some(config.tls(tls)))
}

/// FCM HTTP v1 settings from the arguments, if `--fcm-service-account` was given. The
/// private key is never shown; a missing or malformed field of the file is named.
pub fn fcm(args: &FcmArgs) -> Result<Option<FcmConfig>, String> {
    let Some(path) = &args.fcm_service_account else {
        return Ok(None);
    };
    let mut config = FcmConfig::from_service_account_file(path)
        .map_err(|e| format!("--fcm-service-account: {e}"))?;
    if let Some(project) = &args.fcm_project {
        config = config.project(project);
    }
    if let Some(url) = &args.fcm_url {
        config = config.url(url).map_err(|e| e.to_string())?;
    }
    if let Some(url) = &args.fcm_token_url {
        config = config.token_url(url).map_err(|e| e.to_string())?;
    }
    Ok(Some(
        config
            .tls(tls(args.fcm_ca.as_deref(), None)?)
            .validate_only(args.dry_run),
    ))
}

/// The provider each platform goes through, as the store's journal names them.
pub fn provider_names(apns: &ApnsArgs, fcm: &FcmArgs) -> ProviderNames {
    ProviderNames {
        ios: if apns.apns_url.is_some() {
            "apns-http2"
        } else {
            "apns"
        },
        android: if fcm.fcm_service_account.is_some() {
            "fcm"
        } else {
            "gcm"
        },
    }
}

/// A client with the providers the arguments configure; at least one is required. FCM is
/// preferred over GCM for Android devices when both are given. `connections`, when given,
/// is the number of connections to each HTTP provider (APNs HTTP/2, FCM, GCM, each Web Push
/// origin); `rate` the most requests per second to each.
pub fn client(
    providers: &ProviderArgs,
    connections: Option<usize>,
    rate: Option<u32>,
) -> Result<Client, String> {
    let apns = apns(&providers.apns)?;
    let mut apns_http2 = apns_http2(&providers.apns)?;
    let mut gcm = gcm(&providers.gcm)?;
    let mut fcm = fcm(&providers.fcm)?;
    let mut web = crate::web::webpush(&providers.web)?;
    if let Some(connections) = connections {
        apns_http2 = apns_http2.map(|config| config.connections(connections));
        fcm = fcm.map(|config| config.connections(connections));
        gcm = gcm.map(|config| config.connections(connections));
        web = web.map(|config| config.connections(connections));
    }
    if let Some(rate) = rate {
        apns_http2 = apns_http2.map(|config| config.max_rate(rate));
        fcm = fcm.map(|config| config.max_rate(rate));
        gcm = gcm.map(|config| config.max_rate(rate));
    }
    if apns.is_none() && apns_http2.is_none() && gcm.is_none() && fcm.is_none() && web.is_none() {
        return Err("no provider configured: give --apns-url (HTTP/2, with --apns-key-p8 or --apns-cert), --apns (binary gateway, with --apns-cert, --apns-key), --fcm-service-account (FCM HTTP v1), --gcm-url (legacy GCM, with --gcm-key) and/or --vapid-key with --vapid-subject (Web Push)".into());
    }
    let mut builder = Client::builder();
    if let Some(apns) = apns {
        builder = builder.apns(apns);
    }
    if let Some(apns) = apns_http2 {
        builder = builder.apns_http2(apns);
    }
    if let Some(gcm) = gcm {
        builder = builder.gcm(gcm);
    }
    if let Some(fcm) = fcm {
        builder = builder.fcm(fcm);
    }
    if let Some(web) = web {
        builder = builder.webpush(web);
    }
    builder.build().map_err(|e| e.to_string())
}
