//! `#[audit_event(action = "...", resource_type = "...", resource_id = param, actor = param,
//! include_args)]` on an `async fn`: the function's body runs as written, then an audit event
//! (action, resource, actor, outcome with the error text, duration, arguments as JSON, correlation
//! id) is published through the bus scope (`herald::scope`), whether the call succeeded or not.
//! Parameters marked `#[audit(skip)]` are left out of the arguments, `#[audit(redact)]` ones are
//! recorded as `"[redacted]"`. Options go through the generic parser in `attr.rs`.

use crate::attr::{self, CratePath, Errors, Kind, Spec, Value};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat};

/// The options `#[audit_event]` takes.
const SPECS: &[Spec] = &[
    Spec {
        name: "action",
        kind: Kind::NonEmptyStr,
        example: "\"create_user\"",
    },
    Spec {
        name: "resource_type",
        kind: Kind::NonEmptyStr,
        example: "\"user\"",
    },
    Spec {
        name: "resource_id",
        kind: Kind::Ident,
        example: "user_id",
    },
    Spec {
        name: "actor",
        kind: Kind::Ident,
        example: "caller",
    },
    Spec {
        name: "include_args",
        kind: Kind::Flag,
        example: "",
    },
    Spec {
        name: "crate",
        kind: Kind::Crate,
        example: "\"herald\"",
    },
];

/// What the options of `#[audit_event]` are, for errors.
const TAKES: &str = "`action = \"...\"`, `resource_type = \"...\"`, `resource_id = param`, \
                     `actor = param`, `include_args` and `crate = \"...\"`";

fn unknown_option(option: &str) -> String {
    match option {
        "resource_id_field" => "write `resource_id = param`, naming the parameter".to_owned(),
        "" => format!("expected an audit option: {TAKES}"),
        other => format!("unknown option `{other}`: `#[audit_event]` takes {TAKES}"),
    }
}

/// What `#[audit(...)]` on a parameter does with it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ArgMode {
    Record,
    Skip,
    Redact,
}

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let span = item
                .clone()
                .into_iter()
                .next()
                .map_or_else(Span::call_site, |t| t.span());
            let error = syn::Error::new(
                span,
                "`#[audit_event]` goes on an `async fn`: `#[audit_event(action = \"create_user\", \
                 resource_type = \"user\")] async fn create_user(...) -> Result<T, E>`",
            );
            let compile_error = error.to_compile_error();
            return quote!(#compile_error #item);
        }
    };
    let mut errors = Errors::default();
    let args_span = args
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span());
    let (options, crate_failed) = attr::parse_specs(args, SPECS, &unknown_option, &mut errors);
    let (mut action, mut resource_type, mut resource_id, mut actor) = (None, None, None, None);
    let (mut include_args, mut krate) = (false, None::<CratePath>);
    for option in options {
        match (option.name, option.value) {
            ("action", Value::Str(lit)) => action = Some(lit),
            ("resource_type", Value::Str(lit)) => resource_type = Some(lit),
            ("resource_id", Value::Ident(ident)) => resource_id = Some(ident),
            ("actor", Value::Ident(ident)) => actor = Some(ident),
            ("include_args", Value::Flag) => include_args = true,
            (_, Value::Crate(path)) => krate = Some(path),
            _ => {}
        }
    }
    let fn_name = function.sig.ident.clone();
    if function.sig.asyncness.is_none() {
        errors.spanned(
            function.sig.fn_token,
            format!(
                "`#[audit_event]` goes on an `async fn`: the audit event is published after the call, \
                 through the bus; write `async fn {fn_name}(...)`"
            ),
        );
    }
    if action.is_none() {
        errors.at(
            args_span,
            "`#[audit_event]` needs `action = \"...\"`, e.g. `action = \"create_user\"`",
        );
    }
    if resource_type.is_none() {
        errors.at(
            args_span,
            "`#[audit_event]` needs `resource_type = \"...\"`, e.g. `resource_type = \"user\"`",
        );
    }

    // Parameters: names, and what `#[audit(...)]` says about each; the attribute is removed.
    let mut params: Vec<(syn::Ident, syn::Type, ArgMode)> = Vec::new();
    for input in function.sig.inputs.iter_mut() {
        let FnArg::Typed(param) = input else {
            continue;
        };
        let mut mode = ArgMode::Record;
        let mut kept = Vec::new();
        for a in param.attrs.drain(..) {
            if !a.path().is_ident("audit") {
                kept.push(a);
                continue;
            }
            let parsed = a.parse_args_with(|input: syn::parse::ParseStream| {
                let ident: syn::Ident = input.parse()?;
                match ident.to_string().as_str() {
                    "skip" => Ok(ArgMode::Skip),
                    "redact" => Ok(ArgMode::Redact),
                    other => Err(syn::Error::new(
                        ident.span(),
                        format!(
                            "unknown parameter option `{other}`: write `#[audit(skip)]` to leave the \
                             parameter out of the audit event, or `#[audit(redact)]` to record it as \
                             \"[redacted]\""
                        ),
                    )),
                }
            });
            match parsed {
                Ok(m) => mode = m,
                Err(e) => errors.push(e),
            }
        }
        param.attrs = kept;
        if let Pat::Ident(pat) = &*param.pat {
            params.push((pat.ident.clone(), (*param.ty).clone(), mode));
        }
    }
    let names = || {
        params
            .iter()
            .map(|(i, ..)| format!("`{i}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (option, ident) in [("resource_id", &resource_id), ("actor", &actor)] {
        if let Some(ident) = ident {
            if !params.iter().any(|(p, ..)| p == ident) {
                let listed = if params.is_empty() {
                    "it has none".to_owned()
                } else {
                    format!("its parameters are {}", names())
                };
                errors.spanned(
                    ident,
                    format!(
                        "`{fn_name}` has no parameter `{ident}`: `{option}` names the parameter that \
                         holds it; {listed}"
                    ),
                );
            }
        }
    }
    let compile_errors = errors.into_compile_errors();
    let (Some(action), Some(resource_type), false) = (action, resource_type, crate_failed) else {
        return quote!(#compile_errors #function);
    };
    if compile_errors.is_some() {
        return quote!(#compile_errors #function);
    }

    let import = CratePath::import(krate.as_ref());
    let id_of = |ident: &Option<syn::Ident>| match ident {
        Some(ident) => {
            let ty = &params.iter().find(|(p, ..)| p == ident).unwrap().1;
            let call = quote_spanned!(ty.span()=> __herald::AuditId::audit_id);
            quote!(::core::option::Option::Some(#call(&#ident)))
        }
        None => quote!(::core::option::Option::None),
    };
    let (resource_id, actor) = (id_of(&resource_id), id_of(&actor));
    let args_json = if include_args {
        let entries = params.iter().filter(|(.., m)| *m != ArgMode::Skip).map(|(ident, ty, mode)| {
            let key = ident.to_string();
            match mode {
                ArgMode::Redact => quote!((#key.to_owned(), __herald::serde_json::Value::String("[redacted]".to_owned()))),
                _ => {
                    let call = quote_spanned!(ty.span()=> <#ty as __herald::AuditArg>::audit_json);
                    quote!((#key.to_owned(), #call(&#ident)))
                }
            }
        });
        quote!(::core::option::Option::Some(__herald::serde_json::Value::Object(
            [#(#entries),*].into_iter().collect()
        )))
    } else {
        quote!(::core::option::Option::None)
    };
    let output_ty = match &function.sig.output {
        syn::ReturnType::Type(_, ty) => quote!(#ty),
        syn::ReturnType::Default => quote!(()),
    };
    let result_check =
        quote_spanned!(output_ty.span()=> <#output_ty as __herald::AuditedResult>::failure);
    let block = &function.block;
    let fn_name_text = fn_name.to_string();
    let body = quote! {{
        #import
        // Only services that audit register the audit event (its schema, its topic); the registry
        // keeps one registration however many functions are audited.
        __herald::inventory::submit! { __herald::AUDIT_EVENT }
        let __herald_started = ::std::time::Instant::now();
        let __herald_event = __herald::AuditEvent {
            action: ::std::string::String::from(#action),
            resource_type: ::std::string::String::from(#resource_type),
            resource_id: #resource_id,
            actor: #actor,
            outcome: __herald::AuditOutcome::Success,
            error: ::core::option::Option::None,
            duration_ms: 0,
            args: #args_json,
            correlation_id: ::core::option::Option::None,
        };
        let __herald_result: #output_ty = async move #block.await;
        let __herald_failure = #result_check(&__herald_result);
        __herald::audit_record(#fn_name_text, __herald_event, __herald_failure, __herald_started).await;
        __herald_result
    }};
    *function.block = syn::parse2(body).expect("the audited body is a block");
    quote!(#function)
}
