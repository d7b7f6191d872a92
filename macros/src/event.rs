//! `#[derive(IntegrationEvent)]`: parse the `#[event(...)]` options into a model, validate it, expand
//! it into a `HeraldEvent` impl and an `inventory` registration.

use crate::attr::{self, kw, CratePath, Errors};
use crate::naming;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr, Member, Token};

/// One option of the container attribute `#[event(...)]`.
enum ContainerOption {
    Name(LitStr),
    Topic(LitStr),
    Version(syn::LitInt),
    Crate(Span, CratePath),
    Key(kw::key),
}

impl Parse for ContainerOption {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::name) {
            input.parse::<kw::name>()?;
            Ok(Self::Name(attr::parse_str_value(input)?))
        } else if lookahead.peek(kw::topic) {
            input.parse::<kw::topic>()?;
            Ok(Self::Topic(attr::parse_str_value(input)?))
        } else if lookahead.peek(kw::version) {
            input.parse::<kw::version>()?;
            input.parse::<Token![=]>()?;
            Ok(Self::Version(input.parse()?))
        } else if lookahead.peek(Token![crate]) {
            let span = input.parse::<Token![crate]>()?.span;
            Ok(Self::Crate(span, input.parse()?))
        } else if lookahead.peek(kw::key) {
            Ok(Self::Key(input.parse()?))
        } else {
            Err(lookahead.error())
        }
    }
}

/// The validated model of an event type.
struct EventModel<'a> {
    input: &'a DeriveInput,
    event_type: String,
    topic: String,
    version: u32,
    key: Option<(Member, &'a syn::Type)>,
    krate: Option<CratePath>,
}

pub fn expand(input: DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let model = parse_model(&input, &mut errors);
    let generated = if input.generics.params.is_empty() {
        generate(&model)
    } else {
        TokenStream::new()
    };
    let compile_errors = errors.into_compile_errors();
    quote! { #compile_errors #generated }
}

fn parse_model<'a>(input: &'a DeriveInput, errors: &mut Errors) -> EventModel<'a> {
    let ident = input.ident.to_string();
    let (mut name, mut topic, mut version, mut krate) = (None, None, None, None);
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        let options = match attr
            .parse_args_with(Punctuated::<ContainerOption, Token![,]>::parse_terminated)
        {
            Ok(options) => options,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for option in options {
            match option {
                ContainerOption::Name(lit) => {
                    if lit.value().trim().is_empty() {
                        errors.spanned(&lit, "the event name cannot be empty");
                    }
                    attr::set_once(&mut name, lit.value(), lit.span(), "name", errors);
                }
                ContainerOption::Topic(lit) => {
                    if let Some(problem) = naming::topic_problem(&lit.value()) {
                        errors.spanned(&lit, problem);
                    }
                    attr::set_once(&mut topic, lit.value(), lit.span(), "topic", errors);
                }
                ContainerOption::Version(lit) => match lit.base10_parse::<u32>() {
                    Ok(0) | Err(_) => errors.spanned(
                        &lit,
                        "`version` is the event's schema version: a whole number from 1 up",
                    ),
                    Ok(v) => attr::set_once(&mut version, v, lit.span(), "version", errors),
                },
                ContainerOption::Crate(span, path) => {
                    attr::set_once(&mut krate, path, span, "crate", errors)
                }
                ContainerOption::Key(key) => errors.spanned(
                    key,
                    "`key` marks a field: put `#[event(key)]` on the field that is the partition key",
                ),
            }
        }
    }
    if !input.generics.params.is_empty() {
        errors.spanned(
            &input.generics,
            "a herald event cannot be generic: its topic, type name and schema are fixed per type; \
             declare one event type per concrete payload",
        );
    }
    EventModel {
        input,
        event_type: name.unwrap_or_else(|| naming::dot_case(&ident)),
        topic: topic.unwrap_or_else(|| naming::default_topic(&ident)),
        version: version.unwrap_or(1),
        key: key_field(input, errors),
        krate,
    }
}

/// The partition key: the field marked `#[event(key)]`, else a field named `aggregate_id`.
fn key_field<'a>(input: &'a DeriveInput, errors: &mut Errors) -> Option<(Member, &'a syn::Type)> {
    let fields: Vec<&syn::Field> = match &input.data {
        Data::Struct(s) => s.fields.iter().collect(),
        Data::Enum(e) => e.variants.iter().flat_map(|v| v.fields.iter()).collect(),
        Data::Union(u) => {
            errors.spanned(
                u.union_token,
                "a herald event must be a struct or an enum, not a union",
            );
            return None;
        }
    };
    let is_struct = matches!(input.data, Data::Struct(_));
    let mut marked: Option<(Member, &syn::Type, Span)> = None;
    for (index, field) in fields.iter().enumerate() {
        for attr in field.attrs.iter().filter(|a| a.path().is_ident("event")) {
            let parsed = attr.parse_args_with(|input: ParseStream| {
                let lookahead = input.lookahead1();
                if lookahead.peek(kw::key) {
                    input.parse::<kw::key>()
                } else {
                    Err(lookahead.error())
                }
            });
            let key = match parsed {
                Ok(key) => key,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            if !is_struct {
                errors.spanned(
                    key,
                    "`#[event(key)]` works on struct fields only: an enum event has no single key field",
                );
                continue;
            }
            let member = match &field.ident {
                Some(ident) => Member::Named(ident.clone()),
                None => Member::Unnamed(syn::Index::from(index)),
            };
            if let Some((previous, _, _)) = &marked {
                let previous = match previous {
                    Member::Named(i) => i.to_string(),
                    Member::Unnamed(i) => i.index.to_string(),
                };
                errors.spanned(
                    key,
                    format!("an event has one partition key and `{previous}` is already marked `#[event(key)]`"),
                );
            } else {
                marked = Some((member, &field.ty, key.span));
            }
        }
    }
    if let Some((member, ty, _)) = marked {
        return Some((member, ty));
    }
    match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => named
                .named
                .iter()
                .find(|f| f.ident.as_ref().is_some_and(|i| i == "aggregate_id"))
                .map(|f| (Member::Named(f.ident.clone().unwrap()), &f.ty)),
            _ => None,
        },
        _ => None,
    }
}

fn generate(model: &EventModel) -> TokenStream {
    let private = CratePath::private(model.krate.as_ref());
    let ident = &model.input.ident;
    let (event_type, topic, version) = (&model.event_type, &model.topic, model.version);
    let key = match &model.key {
        Some((member, ty)) => quote_spanned! {ty.span()=>
            ::core::option::Option::Some(#private::PartitionKey::partition_key(&self.#member))
        },
        None => quote!(::core::option::Option::None),
    };
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_attributes, unused_qualifications)]
        const _: () = {
            #[automatically_derived]
            impl #private::HeraldEvent for #ident {
                const EVENT_TYPE: &'static str = #event_type;
                const TOPIC: &'static str = #topic;
                const VERSION: u32 = #version;

                fn partition_key(&self) -> ::core::option::Option<::std::string::String> {
                    #key
                }
            }

            #private::inventory::submit! {
                #private::EventDescriptor {
                    rust_type: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident)),
                    event_type: #event_type,
                    topic: #topic,
                    version: #version,
                    schema: #private::schema_of::<#ident>,
                }
            }
        };
    }
}
