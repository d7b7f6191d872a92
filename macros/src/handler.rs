//! `#[handler]`: parse the options and the function signature into a model, validate the signature
//! (every mistake is an error on the offending token), expand into a dispatch shim and an `inventory`
//! registration. The user's function is kept as written, so it can still be called directly.
//!
//! A signature with a mistake gets no dispatch shim: the shim would only add follow-up errors about
//! the same mistake. The type-level checks (is the event a herald event, is the context `Context`,
//! is the return type a handler result) each happen at exactly one place in the generated code, so
//! each mistake is reported once.

use crate::attr::{self, CratePath, Errors, Kind, Spec, Value};
use crate::duration;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, PathArguments, ReturnType, Type};

/// The options `#[handler]` takes, parsed by the generic parser in `attr.rs`.
const SPECS: &[Spec] = &[
    Spec {
        name: "group",
        kind: Kind::Str,
        example: "\"...\"",
    },
    Spec {
        name: "name",
        kind: Kind::Str,
        example: "\"...\"",
    },
    Spec {
        name: "retries",
        kind: Kind::Int,
        example: "5",
    },
    Spec {
        name: "backoff",
        kind: Kind::Duration,
        example: BACKOFF_EXAMPLE,
    },
    Spec {
        name: "timeout",
        kind: Kind::Duration,
        example: TIMEOUT_EXAMPLE,
    },
    Spec {
        name: "policy",
        kind: Kind::Str,
        example: "\"payments\"",
    },
    Spec {
        name: "concurrency",
        kind: Kind::Count,
        example: "8",
    },
    Spec {
        name: "crate",
        kind: Kind::Crate,
        example: "\"herald\"",
    },
];

/// What `retries` must be.
const RETRIES_RANGE: &str = "`retries` counts the tries after the first attempt: a whole number \
                             from 0 (no retries) to 4294967295, e.g. `retries = 5`";

/// The largest `concurrency` (the runtime's `registry::MAX_CONCURRENCY`).
const MAX_CONCURRENCY: u16 = 1024;

/// What `concurrency` must be.
const CONCURRENCY_RANGE: &str = "`concurrency` is how many events of different keys of one \
                                 partition may run at once: a whole number from 1 (one at a time, \
                                 the default) to 1024, e.g. `concurrency = 8`";

/// A well-formed `backoff` value, for error messages.
const BACKOFF_EXAMPLE: &str = "\"100ms..30s\"";

/// A well-formed `timeout` value, for error messages.
const TIMEOUT_EXAMPLE: &str = "\"5s\"";

/// The options `#[handler]` takes, for error messages.
const OPTIONS: &str = "`group = \"...\"`, `name = \"...\"`, `retries = 5`, \
                       `backoff = \"100ms..30s\"`, `timeout = \"5s\"`, `policy = \"...\"`, \
                       `concurrency = 8` and `crate = \"...\"`";

/// What to say about an option `#[handler]` does not take.
fn unknown_option_message(option: &str) -> String {
    match option {
        "topic" => "a handler consumes the topic of its event: set the topic on the event, \
                    `#[event(topic = \"...\")]`"
            .to_owned(),
        "version" => "a handler reads the version of its event type: set it on the event, \
                      `#[event(version = 2)]`"
            .to_owned(),
        "retry" | "retry_count" | "max_retries" | "attempts" | "max_attempts" => format!(
            "unknown option `{option}`: write `retries = 5`, the number of tries after the first \
             attempt"
        ),
        "delay" | "retry_delay" => format!(
            "unknown option `{option}`: write `backoff = \"2s\"` for a fixed delay between tries, \
             or `backoff = \"100ms..30s\"` for an exponential one"
        ),
        "retry_policy" => "unknown option `retry_policy`: write `policy = \"...\"`".to_owned(),
        "parallelism" | "max_concurrency" | "workers" | "max_parallelism" => format!(
            "unknown option `{option}`: write `concurrency = 8`, how many events of different \
             keys of one partition may run at once"
        ),
        "" => format!("expected a handler option: {OPTIONS}"),
        other => format!("unknown option `{other}`: `#[handler]` takes {OPTIONS}"),
    }
}

/// The retry options of a handler, validated; durations in milliseconds.
#[derive(Default)]
struct RetryModel {
    policy: Option<String>,
    max_retries: Option<u32>,
    /// The first and the longest delay between tries.
    backoff: Option<(u64, u64)>,
    timeout: Option<u64>,
}

/// The validated model of a handler.
struct HandlerModel<'a> {
    function: &'a ItemFn,
    name: String,
    group: Option<String>,
    krate: Option<CratePath>,
    retry: RetryModel,
    /// `concurrency = N`, validated (1 when left out).
    concurrency: u16,
    /// No shim can be generated: the signature has a mistake, or the `crate` option is unusable.
    invalid: bool,
    /// The first parameter's type: an event, or `Event<T>` of one (told apart by the type system).
    event: Option<&'a Type>,
    context: Option<&'a Type>,
    output: Option<&'a Type>,
}

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(
                item_keyword_span(&item),
                "`#[handler]` goes on an `async fn` that takes an event: \
                 `async fn on_event(event: Event<MyEvent>, ctx: &Context) -> Result<(), HandlerError>`",
            );
            let compile_error = error.to_compile_error();
            return quote!(#compile_error #item);
        }
    };
    let mut errors = Errors::default();
    let model = parse_model(args, &function, &mut errors);
    let generated = generate(&model);
    let compile_errors = errors.into_compile_errors();
    quote! {
        #compile_errors
        #function
        #generated
    }
}

/// Where to point when `#[handler]` is not on a function: the item's keyword (`struct`, `impl`, ...),
/// else its first token.
fn item_keyword_span(item: &TokenStream) -> Span {
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(i)) => i.struct_token.span,
        Ok(syn::Item::Enum(i)) => i.enum_token.span,
        Ok(syn::Item::Union(i)) => i.union_token.span,
        Ok(syn::Item::Impl(i)) => i.impl_token.span,
        Ok(syn::Item::Trait(i)) => i.trait_token.span,
        Ok(syn::Item::Mod(i)) => i.mod_token.span,
        Ok(syn::Item::Const(i)) => i.const_token.span,
        Ok(syn::Item::Static(i)) => i.static_token.span,
        Ok(syn::Item::Type(i)) => i.type_token.span,
        Ok(syn::Item::Use(i)) => i.use_token.span,
        _ => item
            .clone()
            .into_iter()
            .next()
            .map_or_else(Span::call_site, |t| t.span()),
    }
}

fn parse_model<'a>(
    args: TokenStream,
    function: &'a ItemFn,
    errors: &mut Errors,
) -> HandlerModel<'a> {
    let (mut name, mut group, mut krate) = (None, None, None::<CratePath>);
    let mut retry = RetryModel::default();
    let mut concurrency = 1;
    let (options, crate_failed) = attr::parse_specs(args, SPECS, &unknown_option_message, errors);
    for option in options {
        match (option.name, option.value) {
            ("group", Value::Str(lit)) => {
                if lit.value().trim().is_empty() {
                    errors.spanned(
                        &lit,
                        "the consumer group cannot be empty: leave `group` out to use the service's group",
                    );
                }
                group = Some(lit.value());
            }
            ("name", Value::Str(lit)) => {
                if lit.value().trim().is_empty() {
                    errors.spanned(
                        &lit,
                        "the handler name cannot be empty: leave `name` out to use the function's name",
                    );
                }
                name = Some(lit.value());
            }
            ("retries", Value::Int(lit)) => match retries(&lit) {
                Ok(n) => retry.max_retries = Some(n),
                Err(message) => errors.spanned(&lit, message),
            },
            ("backoff", Value::Str(lit)) => match backoff(&lit.value()) {
                Ok(delays) => retry.backoff = Some(delays),
                Err(message) => errors.spanned(&lit, message),
            },
            ("timeout", Value::Str(lit)) => match timeout(&lit.value()) {
                Ok(ms) => retry.timeout = Some(ms),
                Err(message) => errors.spanned(&lit, message),
            },
            ("policy", Value::Str(lit)) => {
                if lit.value().trim().is_empty() {
                    errors.spanned(
                        &lit,
                        "the retry policy name cannot be empty: name a policy registered on the bus \
                         builder, or leave `policy` out to use the bus-wide retry settings",
                    );
                }
                retry.policy = Some(lit.value());
            }
            ("concurrency", Value::Int(lit)) => match concurrency_value(&lit) {
                Ok(n) => concurrency = n,
                Err(message) => errors.spanned(&lit, message),
            },
            (_, Value::Crate(path)) => krate = Some(path),
            _ => {}
        }
    }

    let errors_before_signature = errors.count();
    let sig = &function.sig;
    let fn_name = &sig.ident;
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            format!("a herald handler must be an `async fn`: write `async fn {fn_name}(...)`"),
        );
    }
    if let Some(constness) = &sig.constness {
        errors.spanned(
            constness,
            "a handler cannot be a `const fn`: remove `const`",
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.spanned(
            unsafety,
            "a handler cannot be an `unsafe fn`: remove `unsafe`",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(abi, "a handler cannot have an `extern` ABI: remove it");
    }
    if let Some(variadic) = &sig.variadic {
        errors.spanned(variadic, "a handler cannot be variadic");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let span_of: &dyn ToTokens = if sig.generics.params.is_empty() {
            &sig.generics.where_clause
        } else {
            &sig.generics
        };
        errors.spanned(
            span_of,
            "a handler cannot be generic: herald dispatches by event type, so name the concrete event, \
             e.g. `event: Event<UserCreated>`",
        );
    }

    // `Self` in the signature: the function is an associated fn of an `impl` block (a proc macro
    // does not see the block; without `Self` or `self` rustc reports the unresolved name).
    if let Some(self_type) = find_self_type(quote::ToTokens::to_token_stream(&sig.inputs))
        .or_else(|| find_self_type(quote::ToTokens::to_token_stream(&sig.output)))
    {
        errors.at(
            self_type,
            "a handler is a free `async fn`, not an associated function: move it out of the \
             `impl` block, and reach shared state through `ctx: &Context` and `ctx.state::<T>()`",
        );
    }
    let mut typed = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.spanned(
                receiver,
                "a handler is a free `async fn`, not a method: move it out of the `impl` block, \
                 and reach shared state through `ctx: &Context` and `ctx.state::<T>()`",
            ),
            FnArg::Typed(param) => typed.push(param),
        }
    }
    let mut event = None;
    let mut context = None;
    match typed.as_slice() {
        [] if sig.inputs.is_empty() => errors.at(
            sig.paren_token.span.join(),
            format!(
                "a handler takes the event as its first parameter: write `async fn {fn_name}(event: MyEvent)`, \
                 or `async fn {fn_name}(event: Event<MyEvent>, ctx: &Context)` for its metadata and context"
            ),
        ),
        [] => {}
        [first, rest @ ..] if is_context_ref(&first.ty) => {
            let event_ty = rest
                .first()
                .map_or_else(|| "MyEvent".to_owned(), |second| pretty(&second.ty));
            errors.spanned(
                first,
                format!(
                    "the event comes first and the context second: \
                     write `async fn {fn_name}(event: {event_ty}, ctx: &Context)`"
                ),
            );
        }
        [first, rest @ ..] => {
            event = event_param(first, errors);
            if let Some(second) = rest.first() {
                context = context_param(&second.ty, errors);
            }
            for extra in rest.iter().skip(1) {
                errors.spanned(
                    extra,
                    "a handler takes at most two parameters, the event and `ctx: &Context`: \
                     reach shared state through `ctx.state::<T>()`",
                );
            }
        }
    }

    let output = match &sig.output {
        ReturnType::Default => {
            errors.spanned(
                fn_name,
                format!(
                    "handler `{fn_name}` returns nothing: a handler returns `Result<(), E>` so herald knows \
                     when to commit; add `-> Result<(), HandlerError>`"
                ),
            );
            None
        }
        ReturnType::Type(_, ty) => match &**ty {
            Type::ImplTrait(_) => {
                errors.spanned(
                    ty,
                    "a handler returns a concrete `Result<(), E>`, not `impl Trait`: \
                     write `-> Result<(), HandlerError>`",
                );
                None
            }
            // rustc reports `-> _` itself.
            Type::Infer(_) => None,
            ty => Some(ty),
        },
    };

    HandlerModel {
        function,
        name: name.unwrap_or_else(|| fn_name.to_string()),
        group,
        krate,
        retry,
        concurrency,
        invalid: crate_failed || errors.count() > errors_before_signature,
        event,
        context,
        output,
    }
}

/// The value of `retries = N`.
fn retries(lit: &syn::LitInt) -> Result<u32, String> {
    lit.base10_parse::<u32>()
        .map_err(|_| RETRIES_RANGE.to_owned())
}

/// The value of `concurrency = N`: 1 to [`MAX_CONCURRENCY`].
fn concurrency_value(lit: &syn::LitInt) -> Result<u16, String> {
    match lit.base10_parse::<u16>() {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        Ok(0) => Err(format!(
            "`concurrency` cannot be 0: write `concurrency = 1` (the default, one event at a time) \
             or more, up to {MAX_CONCURRENCY}, e.g. `concurrency = 8`"
        )),
        _ => Err(CONCURRENCY_RANGE.to_owned()),
    }
}

/// The first and longest delay of `backoff = "..."`: `"FIRST..MAX"`, or one duration for both.
fn backoff(text: &str) -> Result<(u64, u64), String> {
    let example = format!(
        "`backoff = {BACKOFF_EXAMPLE}` (exponential from the first delay to the second) or \
         `backoff = \"2s\"` (fixed)"
    );
    let parse = |part: &str| {
        duration::parse_millis(part).map_err(|problem| problem.message(part, &example))
    };
    if text.contains("...") || text.contains("..=") {
        return Err(format!(
            "`backoff` separates the first and the longest delay with two dots: {example}"
        ));
    }
    let (first, max) = match text.split_once("..") {
        Some((first, max)) => (parse(first)?, parse(max)?),
        None => {
            let delay = parse(text)?;
            (delay, delay)
        }
    };
    if first == 0 || max == 0 {
        return Err(format!(
            "`backoff` cannot be zero: herald would retry in a busy loop; write a delay of at least \
             `1ms`, e.g. {example}"
        ));
    }
    if let (true, Some((first_text, max_text))) = (first > max, text.split_once("..")) {
        return Err(format!(
            "the first delay `{first_text}` is longer than the longest `{max_text}`: the delay grows \
             from the first to the second, so write `backoff = \"{max_text}..{first_text}\"`"
        ));
    }
    Ok((first, max))
}

/// The milliseconds of `timeout = "..."`.
fn timeout(text: &str) -> Result<u64, String> {
    let example = format!("`timeout = {TIMEOUT_EXAMPLE}`");
    match duration::parse_millis(text) {
        Ok(0) => Err(format!(
            "`timeout` cannot be zero: every attempt would fail at once; write how long one attempt \
             may run, e.g. {example}, or leave `timeout` out to use the bus-wide setting"
        )),
        Ok(ms) => Ok(ms),
        Err(problem) => Err(problem.message(text, &example)),
    }
}

/// `&Context`, `&mut herald::Context`, ...: a context where the event belongs.
fn is_context_ref(ty: &Type) -> bool {
    matches!(ty, Type::Reference(r) if last_ident_is(&r.elem, "Context"))
}

fn last_ident_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => {
            path.path.segments.last().is_some_and(|s| s.ident == name)
        }
        _ => false,
    }
}

/// A type as the user would write it: `Event<UserCreated>`, not `Event < UserCreated >`.
fn pretty(tokens: &impl ToTokens) -> String {
    let mut text = tokens.to_token_stream().to_string();
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" ,", ","),
        ("& ", "&"),
        ("' ", "'"),
    ] {
        text = text.replace(from, to);
    }
    text
}

fn event_param<'a>(param: &'a syn::PatType, errors: &mut Errors) -> Option<&'a Type> {
    let ty = &*param.ty;
    match ty {
        Type::Reference(reference) => {
            let reference_tokens = {
                let (and, lifetime, mutability) = (
                    &reference.and_token,
                    &reference.lifetime,
                    &reference.mutability,
                );
                quote!(#and #lifetime #mutability)
            };
            errors.spanned(
                reference_tokens,
                format!(
                    "a handler owns its event: take it by value, `{}: {}`",
                    pretty(&param.pat),
                    pretty(&reference.elem),
                ),
            );
            None
        }
        Type::ImplTrait(_) => {
            errors.spanned(
                ty,
                "a handler cannot be generic: name the concrete event type, \
                 e.g. `event: UserCreated` or `event: Event<UserCreated>`",
            );
            None
        }
        // rustc reports `_` in a signature itself.
        Type::Infer(_) => None,
        _ => Some(ty),
    }
}

fn context_param<'a>(ty: &'a Type, errors: &mut Errors) -> Option<&'a Type> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_some() => {
            errors.spanned(
                reference.mutability,
                "the context is shared: take `ctx: &Context`, without `mut`",
            );
            None
        }
        Type::Reference(reference) if matches!(*reference.elem, Type::Path(_)) => {
            Some(&reference.elem)
        }
        _ if last_ident_is(ty, "Context") => {
            errors.spanned(ty, "take the context by reference: `ctx: &Context`");
            None
        }
        _ => {
            errors.spanned(
                ty,
                "the second parameter of a handler is its context: write `ctx: &Context`, \
                 and reach shared state through `ctx.state::<T>()`",
            );
            None
        }
    }
}

/// `E` of a return type written `Result<_, E>`.
fn result_error_type(output: &Type) -> Option<&Type> {
    let Type::Path(path) = output else {
        return None;
    };
    let last = path.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [GenericArgument::Type(_), GenericArgument::Type(error)] if last.ident == "Result" => {
            Some(error)
        }
        _ => None,
    }
}

fn generate(model: &HandlerModel) -> TokenStream {
    let (Some(event), Some(output), false) = (&model.event, model.output, model.invalid) else {
        return TokenStream::new();
    };
    let import = CratePath::import(model.krate.as_ref());
    let fn_name = &model.function.sig.ident;
    let registration = quote::format_ident!("__HERALD_HANDLER_{}", fn_name);
    let event_ty = *event;
    // `E` of `-> Result<_, E>` as written, so a wrong error type is pointed at; else inferred.
    let error_ty = result_error_type(output).map_or_else(
        || quote_spanned!(output.span()=> _),
        ToTokens::to_token_stream,
    );
    // One call checks the event type, the return type against it (`Result<(), E>` for an event,
    // `Result<Reply, E>` for a command) and the error type, each at its own type argument, so
    // each mistake is reported once. The call is at the event type, where rustc reports a
    // parameter that is not an event; the other checks land on their own type arguments.
    let event_info = quote_spanned! {event_ty.span()=>
        __herald::event_info::<#event_ty, #output, #error_ty>()
    };
    let call = match model.context {
        Some(ctx_ty) => {
            let ctx = quote_spanned! {ctx_ty.span()=>
                <#ctx_ty as __herald::HandlerContext>::from_context(&ctx)
            };
            quote!(#fn_name(event, #ctx))
        }
        None => quote!(#fn_name(event)),
    };
    // The `Send` check of the handler's future, at the handler's name (axum's `debug_handler`).
    let send_future = quote_spanned!(fn_name.span()=> __herald::handler_scope(ctx.clone(), __herald::send_future(future)).await);
    let name = &model.name;
    let group = match &model.group {
        Some(group) => quote!(::core::option::Option::Some(#group)),
        None => quote!(::core::option::Option::None),
    };
    let retry = retry_tokens(&model.retry);
    let concurrency = model.concurrency;
    quote! {
        // Named rather than `const _`, which is not allowed in an `impl` block: an associated fn
        // without `self` or `Self` in its signature (those get herald's error) then gets a single
        // error, rustc's E0425 that `#fn_name` is not found — a proc macro cannot see that it is
        // inside an `impl` (`ui-tests/tests/ui/fail/handler_associated_fn.rs`).
        #[doc(hidden)]
        #[allow(dead_code, non_upper_case_globals, unused_qualifications, clippy::all)]
        const #registration: () = {
            #import

            const __HERALD_EVENT: __herald::EventInfo<#event_ty, #output> = #event_info;

            fn __herald_dispatch(
                incoming: __herald::Incoming,
                ctx: __herald::Context,
            ) -> __herald::HandlerFuture {
                ::std::boxed::Box::pin(async move {
                    let event = (__HERALD_EVENT.decode)(&incoming)?;
                    let future = #call;
                    let output = #send_future;
                    (__HERALD_EVENT.finish)(output).map_err(__herald::DispatchError::Handler)
                })
            }

            __herald::inventory::submit! {
                __herald::HandlerDescriptor {
                    name: #name,
                    rust_path: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#fn_name)),
                    group: #group,
                    event_type: __HERALD_EVENT.event_type,
                    event_version: __HERALD_EVENT.version,
                    topic: __HERALD_EVENT.topic,
                    event_rust_type: ::core::stringify!(#event_ty),
                    command: __HERALD_EVENT.command,
                    retry: #retry,
                    concurrency: #concurrency,
                    call: __herald_dispatch,
                }
            }
        };
    }
}

/// The span of the first `Self` in `tokens`, looking into groups.
fn find_self_type(tokens: TokenStream) -> Option<proc_macro2::Span> {
    tokens.into_iter().find_map(|token| match token {
        proc_macro2::TokenTree::Ident(ident) if ident == "Self" => Some(ident.span()),
        proc_macro2::TokenTree::Group(group) => find_self_type(group.stream()),
        _ => None,
    })
}

/// The `HandlerRetry` of a handler, as a constant expression.
fn retry_tokens(retry: &RetryModel) -> TokenStream {
    let policy = match &retry.policy {
        Some(policy) => quote!(::core::option::Option::Some(#policy)),
        None => quote!(::core::option::Option::None),
    };
    let max_retries = match retry.max_retries {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let (base_delay, max_delay) = match retry.backoff {
        Some((first, max)) => (Some(first), Some(max)),
        None => (None, None),
    };
    let (base_delay, max_delay, timeout) = (
        duration_tokens(base_delay),
        duration_tokens(max_delay),
        duration_tokens(retry.timeout),
    );
    quote! {
        __herald::HandlerRetry {
            policy: #policy,
            max_retries: #max_retries,
            base_delay: #base_delay,
            max_delay: #max_delay,
            timeout: #timeout,
        }
    }
}

/// `Option<Duration>` of so many milliseconds, as a constant expression.
fn duration_tokens(millis: Option<u64>) -> TokenStream {
    match millis {
        Some(ms) => quote!(::core::option::Option::Some(::core::time::Duration::from_millis(#ms))),
        None => quote!(::core::option::Option::None),
    }
}
