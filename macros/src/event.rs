//! `#[derive(IntegrationEvent)]`: parse the `#[event(...)]` options into a model, validate it, expand
//! it into a `HeraldEvent` impl and an `inventory` registration.
//!
//! A type that cannot be an event (generic, union) gets a fallback impl after the error (thiserror's
//! `fallback.rs`), so every use of the type does not report the same mistake again; it is not
//! registered. An unusable `crate` option gets nothing: the runtime cannot be named.

use crate::attr::{self, kw, CratePath, Errors, Kind, Spec, Value};
use crate::naming;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Member};

/// The options of the container attribute `#[event(...)]`, parsed by the generic parser in
/// `attr.rs`.
const SPECS: &[Spec] = &[
    Spec {
        name: "name",
        kind: Kind::Str,
        example: "\"...\"",
    },
    Spec {
        name: "topic",
        kind: Kind::Str,
        example: "\"...\"",
    },
    Spec {
        name: "version",
        kind: Kind::Int,
        example: "2",
    },
    Spec {
        name: "compat",
        kind: Kind::Str,
        example: "\"full\"",
    },
    Spec {
        name: "upcast_from",
        kind: Kind::Type,
        example: "UserCreatedV1",
    },
    Spec {
        name: "from",
        kind: Kind::Type,
        example: "UserRegistered",
    },
    Spec {
        name: "with",
        kind: Kind::Expr,
        example: "to_integration",
    },
    Spec {
        name: "crate",
        kind: Kind::Crate,
        example: "\"herald\"",
    },
];

/// What `version` must be.
const VERSION_RANGE: &str =
    "`version` is the event's schema version: a whole number from 1 up, e.g. `version = 1`";

/// The compatibility policies `compat = "..."` accepts, as the `Compat` variant each names.
const COMPAT_POLICIES: [(&str, &str); 4] = [
    ("backward", "Backward"),
    ("forward", "Forward"),
    ("full", "Full"),
    ("none", "None"),
];

/// What to say about an option `#[event(...)]` on the type does not take.
fn unknown_option_message(option: &str) -> String {
    match option {
        "key" => "`key` marks a field: put `#[event(key)]` on the field that is the partition key"
            .to_owned(),
        "group" => "`group` is an option of a handler: `#[handler(group = \"...\")]`".to_owned(),
        "" => "expected an event option: `name = \"...\"`, `topic = \"...\"`, `version = N`, \
               `compat = \"...\"`, `upcast_from = OlderType`, `from = DomainEvent` (with \
               `with = fn`) or `crate = \"...\"`"
            .to_owned(),
        other => format!(
            "unknown option `{other}`: `#[event]` takes `name = \"...\"`, `topic = \"...\"`, \
             `version = N`, `compat = \"...\"`, `upcast_from = OlderType`, `from = DomainEvent` \
             (with `with = fn`) and `crate = \"...\"`, \
             and `#[event(key)]` on a field"
        ),
    }
}

/// One `#[event(from = Source, with = fn)]`.
pub(crate) struct Mapping {
    pub source: syn::Type,
    pub with: Option<Box<syn::Expr>>,
}

/// Where the partition key comes from.
pub(crate) enum KeySource {
    /// A field marked `#[event(key)]`.
    Marked,
    /// The field named `aggregate_id`.
    AggregateId,
    /// The field named by `#[domain_event(aggregate_id = ...)]`.
    Domain,
}

/// What makes a message a command: its reply type and default request timeout.
pub(crate) struct CommandParts {
    /// `reply = Type`.
    pub reply: syn::Type,
    /// `timeout = "..."`, in milliseconds.
    pub timeout_ms: u64,
}

/// The validated model of an event type.
pub(crate) struct EventModel<'a> {
    pub input: &'a DeriveInput,
    pub event_type: String,
    pub topic: String,
    pub version: u32,
    /// The `Compat` variant named by `compat = "..."`.
    pub compat: &'static str,
    /// `upcast_from = OlderType`: the older version this one converts from.
    pub upcast_from: Option<syn::Type>,
    /// `from = Source` (with `with = fn`): the events this one is published alongside.
    pub mappings: Vec<Mapping>,
    pub key: Option<(Member, &'a syn::Type, KeySource)>,
    /// `HeraldEvent::AGGREGATE_TYPE`.
    pub aggregate_type: Option<String>,
    /// The field `HeraldEvent::aggregate_version` returns (`#[domain_event(aggregate_version)]`).
    pub aggregate_version: Option<(Member, &'a syn::Type)>,
    /// The field `HeraldEvent::aggregate_id` returns, and how it must display.
    pub aggregate_id: Option<(Member, &'a syn::Type, KeySource)>,
    pub krate: Option<CratePath>,
    /// Set for a `#[derive(Command)]`: the reply type and default timeout.
    pub command: Option<CommandParts>,
    /// No real impl can be generated: the type cannot be an event.
    pub invalid: bool,
    /// The `crate` option is unusable: nothing can name the runtime.
    pub crate_failed: bool,
}

pub fn expand(input: DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let model = parse_model(&input, &mut errors);
    let generated = if model.crate_failed {
        TokenStream::new()
    } else if model.invalid {
        fallback(&model)
    } else {
        generate(&model)
    };
    let compile_errors = errors.into_compile_errors();
    quote! { #compile_errors #generated }
}

fn parse_model<'a>(input: &'a DeriveInput, errors: &mut Errors) -> EventModel<'a> {
    let ident = input.ident.to_string();
    let (mut name, mut topic, mut version, mut krate) = (None, None, None, None);
    let mut compat = None;
    let mut upcast_from = None;
    let mut mappings = Vec::new();
    let (mut invalid, mut crate_failed_any) = (false, false);
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        let list = match attr.meta.require_list() {
            Ok(list) => list,
            Err(_) => {
                errors.spanned(
                    attr,
                    "write the options in parentheses: `#[event(topic = \"...\", version = 2)]`",
                );
                continue;
            }
        };
        let (options, crate_failed) =
            attr::parse_specs(list.tokens.clone(), SPECS, &unknown_option_message, errors);
        crate_failed_any |= crate_failed;
        let (mut from, mut with) = (None::<syn::Type>, None::<(Span, Box<syn::Expr>)>);
        for option in options {
            match (option.name, option.value) {
                ("name", Value::Str(lit)) => {
                    if lit.value().trim().is_empty() {
                        errors.spanned(
                            &lit,
                            format!(
                                "the event name cannot be empty: leave `name` out to use `{}`",
                                naming::dot_case(&ident)
                            ),
                        );
                    }
                    attr::set_once(&mut name, lit.value(), lit.span(), "name", errors);
                }
                ("topic", Value::Str(lit)) => {
                    if let Some(problem) = naming::topic_problem(&lit.value()) {
                        errors.spanned(&lit, problem);
                    }
                    attr::set_once(&mut topic, lit.value(), lit.span(), "topic", errors);
                }
                ("version", Value::Int(lit)) => match lit.base10_parse::<u32>() {
                    Ok(0) | Err(_) => errors.spanned(&lit, VERSION_RANGE),
                    Ok(v) => attr::set_once(&mut version, v, lit.span(), "version", errors),
                },
                ("compat", Value::Str(lit)) => {
                    let value = lit.value();
                    match COMPAT_POLICIES.iter().find(|(name, _)| *name == value.trim()) {
                        Some((_, variant)) => {
                            attr::set_once(&mut compat, *variant, lit.span(), "compat", errors)
                        }
                        None => errors.spanned(
                            &lit,
                            format!(
                                "unknown compatibility policy `{value}`: write `compat = \"backward\"` \
                                 (the default), `\"forward\"`, `\"full\"` or `\"none\"`"
                            ),
                        ),
                    }
                }
                ("upcast_from", Value::Type(ty)) => {
                    attr::set_once(&mut upcast_from, ty, option.span, "upcast_from", errors)
                }
                ("from", Value::Type(ty)) => {
                    if is_self(&ty, &input.ident) {
                        errors.spanned(
                            &ty,
                            "an event cannot be published alongside itself: `from` names the \
                             (domain) event whose publishing also publishes this one",
                        );
                    } else {
                        from = Some(ty);
                    }
                }
                ("with", Value::Expr(expr)) => with = Some((option.span, expr)),
                (_, Value::Crate(path)) => {
                    attr::set_once(&mut krate, path, option.span, "crate", errors)
                }
                _ => {}
            }
        }
        match (from, with) {
            (Some(source), with) => mappings.push(Mapping {
                source,
                with: with.map(|(_, path)| path),
            }),
            (None, Some((span, _))) => errors.at(
                span,
                "`with` names the function that builds this event from the `from` event: \
                 `#[event(from = UserRegistered, with = path::to_fn)]`",
            ),
            (None, None) => {}
        }
    }
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        errors.spanned(
            &input.generics,
            "a herald event cannot be generic: its topic, type name and schema are fixed per type; \
             declare one event type per concrete payload",
        );
        invalid = true;
    }
    if let Data::Union(u) = &input.data {
        errors.spanned(
            u.union_token,
            "a herald event must be a struct or an enum, not a union",
        );
        invalid = true;
    }
    let topic = topic.unwrap_or_else(|| {
        let default = naming::default_topic(&ident);
        let problem = match naming::illegal_char(&default) {
            Some(what) => Some(format!("{what} cannot appear in a topic name")),
            None if default.len() > 249 => Some("a topic name has at most 249 characters".into()),
            None => None,
        };
        if let Some(problem) = problem {
            errors.spanned(
                &input.ident,
                format!(
                    "the default topic of `{ident}`, `{default}`, is not a legal Kafka topic name: \
                     {problem}; name the topic with `#[event(topic = \"...\")]`"
                ),
            );
        }
        default
    });
    EventModel {
        input,
        event_type: name.unwrap_or_else(|| naming::dot_case(&ident)),
        topic,
        version: version.unwrap_or(1),
        compat: compat.unwrap_or("Backward"),
        upcast_from,
        mappings,
        key: key_field(input, errors, "event"),
        aggregate_type: None,
        aggregate_version: None,
        aggregate_id: aggregate_id_field(input),
        krate,
        command: None,
        invalid,
        crate_failed: crate_failed_any,
    }
}

/// Whether `ty` names the type being derived (`Self` or its own name).
fn is_self(ty: &syn::Type, ident: &syn::Ident) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none()
        && p.path.segments.len() == 1
        && (p.path.segments[0].ident == *ident || p.path.segments[0].ident == "Self"))
}

/// The partition key: the field marked `#[event(key)]`, else a field named `aggregate_id`.
/// `attr` is the attribute the macro reads (`event`, `command`).
pub(crate) fn key_field<'a>(
    input: &'a DeriveInput,
    errors: &mut Errors,
    attr: &str,
) -> Option<(Member, &'a syn::Type, KeySource)> {
    let fields: Vec<&syn::Field> = match &input.data {
        Data::Struct(s) => s.fields.iter().collect(),
        Data::Enum(e) => e.variants.iter().flat_map(|v| v.fields.iter()).collect(),
        Data::Union(_) => return None,
    };
    let is_struct = matches!(input.data, Data::Struct(_));
    let mut marked: Option<(Member, &syn::Type)> = None;
    for (index, field) in fields.iter().enumerate() {
        for field_attr in field.attrs.iter().filter(|a| a.path().is_ident(attr)) {
            let key = match field_attr
                .parse_args_with(|input: ParseStream| parse_field_option(input, attr))
            {
                Ok(key) => key,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            if !is_struct {
                errors.spanned(
                    key,
                    format!(
                        "`#[{attr}(key)]` works on struct fields only: an enum {what} has no partition key; \
                         remove it, or make the {what} a struct",
                        what = message_kind(attr)
                    ),
                );
                continue;
            }
            let member = match &field.ident {
                Some(ident) => Member::Named(ident.clone()),
                None => Member::Unnamed(syn::Index::from(index)),
            };
            if let Some((previous, _)) = &marked {
                let previous = match previous {
                    Member::Named(i) => i.to_string(),
                    Member::Unnamed(i) => i.index.to_string(),
                };
                errors.spanned(
                    key,
                    format!(
                        "{a_what} has one partition key and `{previous}` is already marked `#[{attr}(key)]`: \
                         remove one of the two",
                        a_what = if attr == "event" { "an event" } else { "a command" }
                    ),
                );
            } else {
                marked = Some((member, &field.ty));
            }
        }
    }
    if let Some((member, ty)) = marked {
        return Some((member, ty, KeySource::Marked));
    }
    aggregate_id_field(input)
}

/// A struct's field named `aggregate_id`: copied into `ce_aggregateid` when the event is published.
fn aggregate_id_field(input: &DeriveInput) -> Option<(Member, &syn::Type, KeySource)> {
    let Data::Struct(s) = &input.data else {
        return None;
    };
    s.fields
        .iter()
        .find(|f| f.ident.as_ref().is_some_and(|i| i == "aggregate_id"))
        .map(|f| {
            (
                Member::Named(f.ident.clone().unwrap()),
                &f.ty,
                KeySource::AggregateId,
            )
        })
}

/// `field.to_string()` under the bound that says what to do when the field does not display.
fn display_field(member: &Member, ty: &syn::Type, source: &KeySource) -> TokenStream {
    let bound = match source {
        KeySource::Marked => quote_spanned!(ty.span()=> __herald::PartitionKey),
        KeySource::AggregateId => quote_spanned!(ty.span()=> __herald::AggregateIdKey),
        KeySource::Domain => quote_spanned!(ty.span()=> __herald::DomainAggregateId),
    };
    let to_string = quote_spanned!(ty.span()=> <#ty as #bound>::partition_key);
    quote!(::core::option::Option::Some(#to_string(&self.#member)))
}

/// What a message of the macro reading `attr` is called in errors.
fn message_kind(attr: &str) -> &'static str {
    if attr == "event" {
        "event"
    } else {
        "command"
    }
}

/// The one field option, `key`, of `#[{attr}(...)]`.
fn parse_field_option(input: ParseStream, attr: &str) -> syn::Result<kw::key> {
    if input.peek(kw::key) {
        let key = input.parse::<kw::key>()?;
        if !input.is_empty() {
            return Err(input.error(format!("`key` takes no value: write `#[{attr}(key)]`")));
        }
        return Ok(key);
    }
    let what = message_kind(attr);
    Err(attr::unknown_option(input, |option| match option {
        "name" | "topic" | "version" | "compat" | "crate" => format!(
            "`{option}` is an option of the {what} type: put `#[{attr}({option} = ...)]` on the \
             type, not on a field"
        ),
        "reply" | "timeout" if attr == "command" => format!(
            "`{option}` is an option of the {what} type: put `#[{attr}({option} = ...)]` on the \
             type, not on a field"
        ),
        "" => format!("expected `key`: `#[{attr}(key)]` marks the partition key"),
        other => format!(
            "unknown field option `{other}`: the only field option is `#[{attr}(key)]`, which \
             marks the partition key"
        ),
    }))
}

/// The impl of a type that cannot be an event, emitted after its error: uses of the type compile
/// against it, so the user sees the one error. Its bounds are assumed (`where Self: ...`), its items
/// are never reached (the type is not registered, so nothing dispatches to it).
pub(crate) fn fallback(model: &EventModel) -> TokenStream {
    let import = CratePath::import(model.krate.as_ref());
    let (reply, command_impl) = command_tokens(model, true);
    let ident = &model.input.ident;
    let (impl_generics, ty_generics, where_clause) = model.input.generics.split_for_impl();
    let predicates = where_clause.map(|w| &w.predicates);
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_attributes, unused_qualifications)]
        const _: () = {
            #import

            #[automatically_derived]
            impl #impl_generics __herald::HeraldEvent for #ident #ty_generics
            where
                Self: __herald::serde::Serialize
                    + for<'de> __herald::serde::Deserialize<'de>
                    + __herald::JsonSchema
                    + ::core::marker::Send
                    + ::core::marker::Sync
                    + 'static,
                #predicates
            {
                const EVENT_TYPE: &'static str = "";
                const TOPIC: &'static str = "";
                const VERSION: u32 = 0;
                type Reply = #reply;

                fn partition_key(&self) -> ::core::option::Option<::std::string::String> {
                    ::core::unreachable!()
                }
            }

            #command_impl
        };
    }
}

/// The `Reply` type of a message, and the `Command` impl of a command: `()` and nothing for an
/// event. The reply type keeps its span, so a reply that is not serializable is reported at it.
/// In a fallback (`assumed`), the impl assumes `Self: HeraldEvent` as the fallback's own impl
/// assumes its bounds, so a generic command reports its one mistake.
fn command_tokens(model: &EventModel, assumed: bool) -> (TokenStream, TokenStream) {
    let Some(command) = &model.command else {
        return (quote!(()), TokenStream::new());
    };
    let ident = &model.input.ident;
    let (impl_generics, ty_generics, where_clause) = model.input.generics.split_for_impl();
    let reply = &command.reply;
    let reply = quote_spanned!(reply.span()=> #reply);
    let timeout_ms = command.timeout_ms;
    let predicates = where_clause.map(|w| &w.predicates);
    let where_clause = if assumed {
        quote!(where Self: __herald::HeraldEvent, #predicates)
    } else {
        quote!(#where_clause)
    };
    let command_impl = quote! {
        #[automatically_derived]
        impl #impl_generics __herald::Command for #ident #ty_generics #where_clause {
            const TIMEOUT: ::core::time::Duration = __herald::millis(#timeout_ms);
        }
    };
    (reply, command_impl)
}

pub(crate) fn generate(model: &EventModel) -> TokenStream {
    let import = CratePath::import(model.krate.as_ref());
    let (reply, command_impl) = command_tokens(model, false);
    let is_command = model.command.is_some();
    let ident = &model.input.ident;
    let (event_type, topic, version) = (&model.event_type, &model.topic, model.version);
    let compat = syn::Ident::new(model.compat, Span::call_site());
    let key = match &model.key {
        Some((member, ty, source)) => display_field(member, ty, source),
        None => quote!(::core::option::Option::None),
    };
    // The aggregate id displays through the same bound as the key when both are one field, so a
    // field that does not display is reported once.
    let aggregate_id = match (&model.aggregate_id, &model.key) {
        (Some((member, ..)), Some((key, ty, source))) if member == key => {
            display_field(member, ty, source)
        }
        (Some((member, ty, source)), _) => display_field(member, ty, source),
        (None, _) => quote!(::core::option::Option::None),
    };
    let aggregate_type = match &model.aggregate_type {
        Some(aggregate) => quote!(::core::option::Option::Some(#aggregate)),
        None => quote!(::core::option::Option::None),
    };
    let aggregate_version = model.aggregate_version.as_ref().map(|(member, ty)| {
        let version =
            quote_spanned!(ty.span()=> <#ty as __herald::AggregateVersion>::aggregate_version);
        quote! {
            fn aggregate_version(&self) -> ::core::option::Option<i64> {
                ::core::option::Option::Some(#version(&self.#member))
            }
        }
    });
    let upcast = model.upcast_from.as_ref().map(|old| {
        quote_spanned! {old.span()=>
            fn upcast(
                version: u32,
                data: &[u8],
            ) -> ::core::option::Option<::core::result::Result<Self, ::std::string::String>> {
                const _: () = __herald::check_upcast::<#old, #ident>();
                __herald::upcast_via::<#old, Self>(version, data)
            }
        }
    });
    let mappings = model.mappings.iter().map(|mapping| {
        let source = &mapping.source;
        // The target named at `from`, so an unmet `From` bound is reported there.
        let ident = syn::Ident::new(&ident.to_string(), source.span());
        let map = match &mapping.with {
            // The function's signature is checked where `with` names it.
            Some(with) => quote_spanned! {with.span()=>
                |source| __herald::map_with::<#source, #ident>(source, #with)
            },
            // `From<Source>` and `Source: Clone` are checked where `from` names the source.
            None => quote_spanned!(source.span()=> __herald::map_from::<#source, #ident>),
        };
        let source_id = quote_spanned!(source.span()=> ::core::any::TypeId::of::<#source>);
        quote! {
            __herald::inventory::submit! {
                __herald::MappingDescriptor {
                    source: #source_id,
                    source_rust_type: ::core::stringify!(#source),
                    target_rust_type: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                    target_event_type: #event_type,
                    map: #map,
                    encode: __herald::encode_mapped::<#ident>(),
                }
            }
        }
    });
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_attributes, unused_qualifications)]
        const _: () = {
            #import

            #(#mappings)*

            #[automatically_derived]
            impl __herald::HeraldEvent for #ident {
                const EVENT_TYPE: &'static str = #event_type;
                const TOPIC: &'static str = #topic;
                const VERSION: u32 = #version;
                const AGGREGATE_TYPE: ::core::option::Option<&'static str> = #aggregate_type;
                type Reply = #reply;
                const IS_COMMAND: bool = #is_command;

                fn partition_key(&self) -> ::core::option::Option<::std::string::String> {
                    #key
                }

                fn aggregate_id(&self) -> ::core::option::Option<::std::string::String> {
                    #aggregate_id
                }

                #aggregate_version

                #upcast
            }

            #command_impl

            __herald::inventory::submit! {
                __herald::EventDescriptor {
                    rust_type: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                    event_type: #event_type,
                    topic: #topic,
                    version: #version,
                    schema: __herald::schema_of::<#ident>,
                    compat: __herald::Compat::#compat,
                }
            }
        };
    }
}
