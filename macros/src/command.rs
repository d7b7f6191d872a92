//! `#[derive(Command)]`: a command is a herald message (the `HeraldEvent` impl and registration of
//! `#[derive(IntegrationEvent)]`, from the same model) with a reply type and a default request
//! timeout (the `Command` impl). Options go through the generic parser in `attr.rs`.
//!
//! Defaults: the name is the type's name in dot case (`CreateUser` → `create.user`); the topic is
//! `{domain}.commands` (seed 000/001's `notification.commands`), the domain being the name's first
//! dot-separated segment (`name = "user.create"` → `user.commands`); the timeout is 30 s.

use crate::attr::{self, CratePath, Errors, Kind, Spec, Value};
use crate::duration;
use crate::event::{self, CommandParts, EventModel};
use crate::naming;
use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput};

/// The options `#[command(...)]` takes on the type.
const SPECS: &[Spec] = &[
    Spec {
        name: "reply",
        kind: Kind::Type,
        example: "UserCreatedReply",
    },
    Spec {
        name: "name",
        kind: Kind::NonEmptyStr,
        example: "\"user.create\"",
    },
    Spec {
        name: "topic",
        kind: Kind::NonEmptyStr,
        example: "\"user.commands\"",
    },
    Spec {
        name: "timeout",
        kind: Kind::Duration,
        example: "\"5s\"",
    },
    Spec {
        name: "version",
        kind: Kind::Int,
        example: "2",
    },
    Spec {
        name: "crate",
        kind: Kind::Crate,
        example: "\"herald\"",
    },
];

/// The default request timeout, 30 s.
const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// What to say about an option `#[command(...)]` does not take.
fn unknown_option(option: &str) -> String {
    const TAKES: &str = "`reply = ReplyType`, `name = \"...\"`, `topic = \"...\"`, \
                         `timeout = \"5s\"`, `version = N` and `crate = \"...\"`";
    match option {
        "key" => {
            "`key` marks a field: put `#[command(key)]` on the field that is the partition key"
                .to_owned()
        }
        "reply_to" => "the reply topic is the caller's, set by `bus.request(...)`: the command \
                       declares only its reply type, `reply = ReplyType`"
            .to_owned(),
        "response" | "returns" | "output" | "reply_type" => {
            format!("unknown option `{option}`: write `reply = ReplyType`")
        }
        "timeout_ms" => "unknown option `timeout_ms`: write `timeout = \"5s\"`".to_owned(),
        "group" | "retries" | "backoff" | "policy" => format!(
            "`{option}` is an option of a handler: `#[handler({option} = ...)]` on the function \
             that handles the command"
        ),
        "" => format!("expected a command option: {TAKES}"),
        other => format!("unknown option `{other}`: `#[command]` takes {TAKES}"),
    }
}

pub fn expand(input: DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let model = model(&input, &mut errors);
    let generated = if model.crate_failed {
        TokenStream::new()
    } else if model.invalid {
        event::fallback(&model)
    } else {
        event::generate(&model)
    };
    let compile_errors = errors.into_compile_errors();
    quote! { #compile_errors #generated }
}

fn model<'a>(input: &'a DeriveInput, errors: &mut Errors) -> EventModel<'a> {
    let ident = input.ident.to_string();
    let (mut reply, mut name, mut topic, mut timeout, mut version, mut krate) =
        (None, None, None, None, None, None::<CratePath>);
    let mut crate_failed = false;
    let mut reply_written = false;
    let attrs: Vec<&syn::Attribute> = input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("command"))
        .collect();
    for attr in &attrs {
        let list = match attr.meta.require_list() {
            Ok(list) => list,
            Err(_) => {
                errors.spanned(
                    attr,
                    "write the options in parentheses: `#[command(reply = ReplyType)]`",
                );
                continue;
            }
        };
        // A `reply` option written but mistaken was reported where it is: "needs `reply`" only
        // when it is absent.
        reply_written |= list
            .tokens
            .clone()
            .into_iter()
            .any(|t| matches!(t, proc_macro2::TokenTree::Ident(i) if i == "reply"));
        let (options, failed) =
            attr::parse_specs(list.tokens.clone(), SPECS, &unknown_option, errors);
        crate_failed |= failed;
        for option in options {
            let span = option.span;
            match (option.name, option.value) {
                ("reply", Value::Type(ty)) => attr::set_once(&mut reply, ty, span, "reply", errors),
                ("name", Value::Str(lit)) => {
                    attr::set_once(&mut name, lit.value(), span, "name", errors)
                }
                ("topic", Value::Str(lit)) => {
                    if let Some(problem) = naming::topic_problem(&lit.value()) {
                        errors.spanned(&lit, problem);
                    }
                    attr::set_once(&mut topic, lit.value(), span, "topic", errors)
                }
                ("timeout", Value::Str(lit)) => match timeout_millis(&lit.value()) {
                    Ok(ms) => attr::set_once(&mut timeout, ms, span, "timeout", errors),
                    Err(message) => errors.spanned(&lit, message),
                },
                ("version", Value::Int(lit)) => match lit.base10_parse::<u32>() {
                    Ok(v) if v > 0 => attr::set_once(&mut version, v, span, "version", errors),
                    _ => errors.spanned(
                        &lit,
                        "`version` is the command's schema version: a whole number from 1 up, \
                         e.g. `version = 1`",
                    ),
                },
                ("crate", Value::Crate(path)) => {
                    attr::set_once(&mut krate, path, span, "crate", errors)
                }
                _ => {}
            }
        }
    }
    let mut invalid = false;
    if reply.is_none() && !reply_written {
        let message = "`#[derive(Command)]` needs the command's reply type: \
                       `#[command(reply = ReplyType)]`, where `ReplyType` derives `Serialize`, \
                       `Deserialize` and `JsonSchema` (`reply = ()` for a bare acknowledgement)";
        match attrs.first() {
            Some(attr) => errors.spanned(attr, message),
            None => errors.spanned(&input.ident, message),
        }
    }
    if reply.is_none() {
        invalid = true;
    }
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        errors.spanned(
            &input.generics,
            "a herald command cannot be generic: its topic, name and schema are fixed per type; \
             declare one command type per concrete payload",
        );
        invalid = true;
    }
    if let Data::Union(u) = &input.data {
        errors.spanned(
            u.union_token,
            "a herald command must be a struct or an enum, not a union",
        );
        invalid = true;
    }
    let name = name.unwrap_or_else(|| naming::dot_case(&ident));
    let topic = topic.unwrap_or_else(|| {
        let default = naming::command_topic(&name);
        if let Some(problem) = naming::topic_problem(&default) {
            errors.spanned(
                &input.ident,
                format!(
                    "the default topic of `{ident}`, `{default}`, is not a legal Kafka topic name: \
                     {problem}; name the topic with `#[command(topic = \"...\")]`"
                ),
            );
        }
        default
    });
    EventModel {
        input,
        event_type: name,
        topic,
        version: version.unwrap_or(1),
        compat: "Backward",
        upcast_from: None,
        mappings: Vec::new(),
        key: event::key_field(input, errors, "command"),
        aggregate_type: None,
        aggregate_version: None,
        aggregate_id: None,
        krate,
        command: Some(CommandParts {
            reply: reply.unwrap_or_else(|| syn::parse_quote!(())),
            timeout_ms: timeout.unwrap_or(DEFAULT_TIMEOUT_MS),
        }),
        invalid,
        crate_failed,
    }
}

/// The milliseconds of `timeout = "..."`.
fn timeout_millis(text: &str) -> Result<u64, String> {
    let example = "`timeout = \"5s\"`";
    match duration::parse_millis(text) {
        Ok(0) => Err(format!(
            "`timeout` cannot be zero: every request would time out at once; write how long a \
             caller waits for the reply, e.g. {example}, or leave it out for 30 s"
        )),
        Ok(ms) => Ok(ms),
        Err(problem) => Err(problem.message(text, example)),
    }
}
