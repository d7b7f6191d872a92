//! `#[handler]`: parse the options and the function signature into a model, validate the signature
//! (every mistake is an error on the offending token), expand into a dispatch shim and an `inventory`
//! registration. The user's function is kept as written, so it can still be called directly.

use crate::attr::{self, kw, CratePath, Errors};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, LitStr, PathArguments, ReturnType, Token, Type};

/// One option of `#[handler(...)]`.
enum HandlerOption {
    Group(LitStr),
    Name(LitStr),
    Crate(Span, CratePath),
}

impl Parse for HandlerOption {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::group) {
            input.parse::<kw::group>()?;
            Ok(Self::Group(attr::parse_str_value(input)?))
        } else if lookahead.peek(kw::name) {
            input.parse::<kw::name>()?;
            Ok(Self::Name(attr::parse_str_value(input)?))
        } else if lookahead.peek(Token![crate]) {
            let span = input.parse::<Token![crate]>()?.span;
            Ok(Self::Crate(span, input.parse()?))
        } else {
            Err(lookahead.error())
        }
    }
}

/// How the handler receives its event.
enum EventParam<'a> {
    /// `event: T`: the payload only.
    Data(&'a Type),
    /// `event: Event<T>`: payload and metadata.
    Envelope(&'a Type),
}

impl EventParam<'_> {
    fn event_type(&self) -> &Type {
        match self {
            Self::Data(ty) | Self::Envelope(ty) => ty,
        }
    }
}

/// The validated model of a handler.
struct HandlerModel<'a> {
    function: &'a ItemFn,
    name: String,
    group: Option<String>,
    krate: Option<CratePath>,
    event: Option<EventParam<'a>>,
    context: Option<&'a Type>,
    output: Option<&'a Type>,
}

pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
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

fn parse_model<'a>(
    args: TokenStream,
    function: &'a ItemFn,
    errors: &mut Errors,
) -> HandlerModel<'a> {
    let (mut name, mut group, mut krate) = (None, None, None);
    match Punctuated::<HandlerOption, Token![,]>::parse_terminated.parse2(args) {
        Ok(options) => {
            for option in options {
                match option {
                    HandlerOption::Group(lit) => {
                        if lit.value().trim().is_empty() {
                            errors.spanned(&lit, "the consumer group cannot be empty: leave `group` out to use the service's group");
                        }
                        attr::set_once(&mut group, lit.value(), lit.span(), "group", errors)
                    }
                    HandlerOption::Name(lit) => {
                        if lit.value().trim().is_empty() {
                            errors.spanned(&lit, "the handler name cannot be empty: leave `name` out to use the function's name");
                        }
                        attr::set_once(&mut name, lit.value(), lit.span(), "name", errors)
                    }
                    HandlerOption::Crate(span, path) => {
                        attr::set_once(&mut krate, path, span, "crate", errors)
                    }
                }
            }
        }
        Err(e) => errors.push(e),
    }

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

    let mut event = None;
    let mut context = None;
    for (index, input) in sig.inputs.iter().enumerate() {
        let typed = match input {
            FnArg::Receiver(receiver) => {
                errors.spanned(
                    receiver,
                    "a handler is a free `async fn`, not a method: remove `self` and reach shared \
                     state through `ctx.state::<T>()`",
                );
                continue;
            }
            FnArg::Typed(typed) => typed,
        };
        match index {
            0 => event = event_param(&typed.ty, errors),
            1 => context = context_param(&typed.ty, errors),
            _ => errors.spanned(
                typed,
                "a handler takes at most two parameters, the event and `ctx: &Context`: \
                 reach shared state through `ctx.state::<T>()`",
            ),
        }
    }
    if sig.inputs.is_empty() {
        errors.at(
            sig.paren_token.span.join(),
            format!(
                "a handler takes the event as its first parameter: \
                 write `async fn {fn_name}(event: Event<MyEvent>, ctx: &Context)` or `{fn_name}(event: MyEvent)`"
            ),
        );
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
        ReturnType::Type(_, ty) => Some(&**ty),
    };

    HandlerModel {
        function,
        name: name.unwrap_or_else(|| fn_name.to_string()),
        group,
        krate,
        event,
        context,
        output,
    }
}

fn event_param<'a>(ty: &'a Type, errors: &mut Errors) -> Option<EventParam<'a>> {
    match ty {
        Type::Reference(reference) => {
            let inner = &reference.elem;
            errors.spanned(
                ty,
                format!(
                    "a handler owns its event: take it by value, `{}` instead of `{}`",
                    inner.to_token_stream(),
                    ty.to_token_stream()
                ),
            );
            None
        }
        Type::ImplTrait(_) | Type::Infer(_) => {
            errors.spanned(
                ty,
                "the event parameter needs a concrete event type, e.g. `Event<UserCreated>`",
            );
            None
        }
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            match &last.arguments {
                PathArguments::AngleBracketed(args) if last.ident == "Event" => {
                    let mut types = args.args.iter().filter_map(|a| match a {
                        GenericArgument::Type(t) => Some(t),
                        _ => None,
                    });
                    match (types.next(), types.next(), args.args.len()) {
                        (Some(inner), None, 1) => Some(EventParam::Envelope(inner)),
                        _ => {
                            errors.spanned(
                                args,
                                "`Event` takes one event type: `Event<UserCreated>`",
                            );
                            None
                        }
                    }
                }
                _ => Some(EventParam::Data(ty)),
            }
        }
        _ => Some(EventParam::Data(ty)),
    }
}

fn context_param<'a>(ty: &'a Type, errors: &mut Errors) -> Option<&'a Type> {
    match ty {
        Type::Reference(reference) if reference.mutability.is_none() => Some(&reference.elem),
        Type::Reference(reference) => {
            errors.spanned(
                reference.mutability,
                "the context is shared: take `&Context`, not `&mut Context`",
            );
            None
        }
        _ => {
            errors.spanned(
                ty,
                "the second parameter of a handler is its context: write `ctx: &Context`",
            );
            None
        }
    }
}

fn generate(model: &HandlerModel) -> TokenStream {
    let (Some(event), Some(output)) = (&model.event, model.output) else {
        return TokenStream::new();
    };
    if model.function.sig.asyncness.is_none() || !model.function.sig.generics.params.is_empty() {
        return TokenStream::new();
    }
    let private = CratePath::private(model.krate.as_ref());
    let fn_name = &model.function.sig.ident;
    let event_ty = event.event_type();
    let event_span = event_ty.span();
    let decode = match event {
        EventParam::Data(_) => {
            quote_spanned!(event_span=> #private::decode_data::<#event_ty>(&incoming))
        }
        EventParam::Envelope(_) => {
            quote_spanned!(event_span=> #private::decode_event::<#event_ty>(&incoming))
        }
    };
    let call = match model.context {
        Some(_) => quote!(#fn_name(event, &ctx)),
        None => quote!(#fn_name(event)),
    };
    let context_check = model
        .context
        .map(|ctx_ty| quote_spanned!(ctx_ty.span()=> #private::assert_context::<#ctx_ty>();));
    let output_span = output.span();
    let into_result = quote_spanned!(output_span=> #private::HandlerOutput::into_handler_result);
    let output_check = quote_spanned!(output_span=> #private::assert_output::<#output>(););
    let consts = |item: TokenStream| quote_spanned!(event_span=> <#event_ty as #private::HeraldEvent>::#item);
    let (event_type, topic, version) = (
        consts(quote!(EVENT_TYPE)),
        consts(quote!(TOPIC)),
        consts(quote!(VERSION)),
    );
    let name = &model.name;
    let group = match &model.group {
        Some(group) => quote!(::core::option::Option::Some(#group)),
        None => quote!(::core::option::Option::None),
    };
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_qualifications, clippy::all)]
        const _: () = {
            #[allow(dead_code)]
            fn __herald_signature_checks() {
                #context_check
                #output_check
            }

            fn __herald_dispatch(
                incoming: #private::Incoming,
                ctx: #private::Context,
            ) -> #private::HandlerFuture {
                ::std::boxed::Box::pin(async move {
                    let event = #decode?;
                    #into_result(#call.await).map_err(#private::DispatchError::Handler)
                })
            }

            #private::inventory::submit! {
                #private::HandlerDescriptor {
                    name: #name,
                    rust_path: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#fn_name)),
                    group: #group,
                    event_type: #event_type,
                    event_version: #version,
                    topic: #topic,
                    event_rust_type: ::core::stringify!(#event_ty),
                    call: __herald_dispatch,
                }
            }
        };
    }
}
