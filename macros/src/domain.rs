//! `#[domain_event(aggregate = "user", aggregate_id = user_id)]` on a struct: an event of an
//! aggregate, published to `domain.{aggregate}.events` (seed 000), keyed by the aggregate id so one
//! aggregate's events stay in order, with the aggregate's type and id in the CloudEvents metadata
//! (`ce_aggregatetype`, `ce_aggregateid`). Options go through the generic parser in `attr.rs`; the
//! impl is the one `#[derive(IntegrationEvent)]` generates, from the same model.

use crate::attr::{self, CratePath, Errors, Kind, Spec, Value};
use crate::event::{self, EventModel, KeySource};
use crate::naming;
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Data, DeriveInput, Fields, Member};

/// The options `#[domain_event]` takes.
const SPECS: &[Spec] = &[
    Spec {
        name: "aggregate",
        kind: Kind::NonEmptyStr,
        example: "\"user\"",
    },
    Spec {
        name: "aggregate_id",
        kind: Kind::Ident,
        example: "user_id",
    },
    Spec {
        name: "aggregate_version",
        kind: Kind::Ident,
        example: "version",
    },
    Spec {
        name: "name",
        kind: Kind::NonEmptyStr,
        example: "\"user.registered\"",
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

/// What to say about an option `#[domain_event]` does not take.
fn unknown_option(option: &str) -> String {
    const TAKES: &str = "`aggregate = \"...\"`, `aggregate_id = field`, \
                         `aggregate_version = field`, `name = \"...\"`, `version = N` and \
                         `crate = \"...\"`";
    match option {
        "topic" => {
            "a domain event's topic is `domain.{aggregate}.events`: set `aggregate = \"...\"`, \
                    or use `#[derive(IntegrationEvent)]` with `#[event(topic = \"...\")]`"
                .to_owned()
        }
        "key" => "a domain event is keyed by its aggregate id: `aggregate_id = field`".to_owned(),
        "aggregate_type" => "write `aggregate = \"...\"` for the aggregate's type".to_owned(),
        "" => format!("expected a domain event option: {TAKES}"),
        other => format!("unknown option `{other}`: `#[domain_event]` takes {TAKES}"),
    }
}

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    if let Ok(function) = syn::parse2::<syn::ItemFn>(item.clone()) {
        return crate::domain_fn::expand(args, function);
    }
    let input: DeriveInput = match syn::parse2(item.clone()) {
        Ok(input) => input,
        Err(_) => {
            let error = syn::Error::new(
                first_span(&item),
                "`#[domain_event]` goes on a struct: `#[domain_event(aggregate = \"user\", \
                 aggregate_id = user_id)] struct UserRegistered { user_id: Uuid, ... }`, or on an \
                 `async fn` that returns `Result<T, E>` to publish a domain event after `Ok`",
            );
            let compile_error = error.to_compile_error();
            return quote!(#compile_error #item);
        }
    };
    let mut errors = Errors::default();
    let generated = match model(args, &input, &mut errors) {
        Some(model) if model.crate_failed => TokenStream::new(),
        Some(model) if model.invalid => event::fallback(&model),
        Some(model) => event::generate(&model),
        None => TokenStream::new(),
    };
    let compile_errors = errors.into_compile_errors();
    quote! {
        #compile_errors
        #input
        #generated
    }
}

fn first_span(item: &TokenStream) -> Span {
    item.clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}

fn model<'a>(
    args: TokenStream,
    input: &'a DeriveInput,
    errors: &mut Errors,
) -> Option<EventModel<'a>> {
    let args_span = first_span(&args);
    // Options written but mistaken were reported where they are: "needs `x`" only when `x` is absent.
    let written: Vec<String> = args
        .clone()
        .into_iter()
        .filter_map(|t| match t {
            proc_macro2::TokenTree::Ident(i) => Some(i.to_string()),
            _ => None,
        })
        .collect();
    let absent = |name: &str| !written.iter().any(|w| w == name);
    let (options, crate_failed) = attr::parse_specs(args, SPECS, &unknown_option, errors);
    let (mut aggregate, mut aggregate_id, mut name, mut version, mut krate) =
        (None, None, None, None, None::<CratePath>);
    let mut aggregate_version = None::<syn::Ident>;
    for option in options {
        match option.value {
            Value::Str(lit) if option.name == "aggregate" => {
                let topic = naming::domain_topic(&lit.value());
                if let Some(problem) = naming::topic_problem(&topic) {
                    errors.spanned(
                        &lit,
                        format!("the aggregate makes the topic `{topic}`, which is not legal: {problem}"),
                    );
                }
                aggregate = Some(lit.value());
            }
            Value::Str(lit) => name = Some(lit.value()),
            Value::Ident(ident) if option.name == "aggregate_version" => {
                aggregate_version = Some(ident)
            }
            Value::Ident(ident) => aggregate_id = Some(ident),
            Value::Int(lit) => match lit.base10_parse::<u32>() {
                Ok(v) if v > 0 => version = Some(v),
                _ => errors.spanned(
                    &lit,
                    "`version` is the event's schema version: a whole number from 1 up, e.g. `version = 1`",
                ),
            },
            Value::Crate(path) => krate = Some(path),
            Value::Flag | Value::Expr(_) | Value::Type(_) => {}
        }
    }
    let ident = &input.ident;
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => Some(&named.named),
            _ => {
                errors.spanned(
                    ident,
                    "a domain event is a struct with named fields, one of which is the aggregate id",
                );
                None
            }
        },
        Data::Enum(e) => {
            errors.spanned(
                e.enum_token,
                "`#[domain_event]` goes on a struct with named fields, one of which is the aggregate \
                 id; for an enum use `#[derive(IntegrationEvent)]`",
            );
            None
        }
        Data::Union(u) => {
            errors.spanned(
                u.union_token,
                "a herald event must be a struct or an enum, not a union",
            );
            None
        }
    };
    let missing = |what: &str, example: &str| {
        format!(
            "`#[domain_event]` needs `{what}`: `#[domain_event(aggregate = \"user\", aggregate_id = \
             user_id)]`{example}"
        )
    };
    if aggregate.is_none() && absent("aggregate") {
        errors.at(
            args_span,
            missing(
                "aggregate",
                " — the aggregate's type, which names the topic",
            ),
        );
    }
    let fields = fields?;
    let field = match &aggregate_id {
        None => {
            if absent("aggregate_id") {
                errors.at(
                    args_span,
                    missing("aggregate_id", " — the field holding the aggregate's id"),
                );
            }
            None
        }
        Some(id) => {
            let found = fields.iter().find(|f| f.ident.as_ref() == Some(id));
            if found.is_none() {
                let names: Vec<String> = fields
                    .iter()
                    .filter_map(|f| f.ident.as_ref().map(|i| format!("`{i}`")))
                    .collect();
                errors.spanned(
                    id,
                    format!(
                        "`{ident}` has no field `{id}`: `aggregate_id` names the field that holds \
                         the aggregate's id; the fields are {}",
                        names.join(", ")
                    ),
                );
            }
            found
        }
    };
    let version_field = aggregate_version.as_ref().and_then(|id| {
        let found = fields.iter().find(|f| f.ident.as_ref() == Some(id));
        if found.is_none() {
            errors.spanned(
                id,
                format!(
                    "`{ident}` has no field `{id}`: `aggregate_version` names the field that holds \
                     the aggregate's version after this event"
                ),
            );
        }
        found.map(|f| (Member::Named(id.clone()), &f.ty))
    });
    let generic = !input.generics.params.is_empty() || input.generics.where_clause.is_some();
    if generic {
        errors.spanned(
            &input.generics,
            "a herald event cannot be generic: its topic, type name and schema are fixed per type",
        );
    }
    // Without an aggregate or its id there is no real impl, only the fallback after the error.
    let invalid = generic || aggregate.is_none() || field.is_none();
    let aggregate = aggregate.unwrap_or_default();
    let key = field.map(|f| {
        (
            Member::Named(f.ident.clone().unwrap()),
            &f.ty,
            KeySource::Domain,
        )
    });
    Some(EventModel {
        input,
        event_type: name.unwrap_or_else(|| naming::dot_case(&ident.to_string())),
        topic: naming::domain_topic(&aggregate),
        version: version.unwrap_or(1),
        compat: "Backward",
        upcast_from: None,
        mappings: Vec::new(),
        aggregate_id: key
            .as_ref()
            .map(|(m, t, _)| (m.clone(), *t, KeySource::Domain)),
        key,
        aggregate_type: Some(aggregate),
        aggregate_version: version_field,
        krate,
        command: None,
        invalid,
        crate_failed,
    })
}
