//! `#[domain_event]` on an `async fn` returning `Result<T, E>` (seed 004's decorator): after the
//! body returns `Ok`, a domain event is published through the bus scope (`herald::scope`) and the
//! `Ok` value is returned; an `Err` publishes nothing.
//!
//! - `#[domain_event]`: the `Ok` value is the domain event; it is published and returned.
//! - `#[domain_event(emit = |user| UserRegistered { .. })]` (or `emit = path::to_fn`): the event
//!   is built from a reference to the `Ok` value; the closure may use the function's arguments,
//!   which the body only borrowed (the body runs as a non-`move` async block, so an argument the
//!   body moves is reported by rustc as used after move, at the closure).
//!
//! A failed publish turns the call into `Err(E::from(herald::Error))`: the caller learns the event
//! is not out (so `E: From<herald::Error>`, true of `anyhow::Error` and of a `#[from]` variant).

use crate::attr::{self, CratePath, Errors, Kind, Spec, Value};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::ItemFn;

/// The options `#[domain_event]` takes on a function.
const SPECS: &[Spec] = &[
    Spec {
        name: "emit",
        kind: Kind::Expr,
        example: "|user| UserRegistered { user_id: user.id }",
    },
    Spec {
        name: "crate",
        kind: Kind::Crate,
        example: "\"herald\"",
    },
];

/// What to say about an option `#[domain_event]` on a function does not take.
fn unknown_option(option: &str) -> String {
    const TAKES: &str =
        "`emit = |value| Event { ... }` (or `emit = path::to_fn`) and `crate = \"...\"`";
    match option {
        "aggregate" | "aggregate_id" | "name" | "version" => format!(
            "`{option}` is an option of a domain event struct: on a function, the published event's \
             type says its aggregate; the function takes {TAKES}"
        ),
        "" => format!("expected an option of `#[domain_event]` on a function: {TAKES}"),
        other => format!("unknown option `{other}`: `#[domain_event]` on a function takes {TAKES}"),
    }
}

pub fn expand(args: TokenStream, mut function: ItemFn) -> TokenStream {
    let mut errors = Errors::default();
    let (options, crate_failed) = attr::parse_specs(args, SPECS, &unknown_option, &mut errors);
    let (mut emit, mut krate) = (None, None::<CratePath>);
    for option in options {
        match option.value {
            Value::Expr(expr) => emit = Some(expr),
            Value::Crate(path) => krate = Some(path),
            _ => {}
        }
    }
    let fn_name = function.sig.ident.clone();
    if function.sig.asyncness.is_none() {
        errors.spanned(
            function.sig.fn_token,
            format!(
                "`#[domain_event]` goes on an `async fn`: the event is published after the call \
                 returns `Ok`, through the bus; write `async fn {fn_name}(...)`"
            ),
        );
    }
    let output_ty = match &function.sig.output {
        syn::ReturnType::Type(_, ty) => Some(ty.clone()),
        syn::ReturnType::Default => {
            errors.spanned(
                &function.sig,
                format!(
                    "`#[domain_event]` publishes after `Ok`: `{fn_name}` must return `Result<T, E>` \
                     (the event is `T`, or built from it with `emit = ...`)"
                ),
            );
            None
        }
    };
    let compile_errors = errors.into_compile_errors();
    let (Some(output_ty), None, false) = (output_ty, &compile_errors, crate_failed) else {
        return quote!(#compile_errors #function);
    };

    let import = CratePath::import(krate.as_ref());
    let fn_name_text = fn_name.to_string();
    let after = match &emit {
        Some(emit) => quote_spanned! {emit.span()=>
            __herald::domain_emit::<#output_ty, _>(#fn_name_text, __herald_result, #emit).await
        },
        None => quote_spanned! {output_ty.span()=>
            __herald::domain_value::<#output_ty>(#fn_name_text, __herald_result).await
        },
    };
    let block = &function.block;
    let body = quote! {{
        #import
        let __herald_result: #output_ty = async #block.await;
        #after
    }};
    *function.block = syn::parse2(body).expect("the domain event body is a block");
    quote!(#function)
}
