//! Parsing of macro options shared by the macros: keywords, `name = value` pairs and an error
//! collector that reports every mistake at once (serde's `Ctxt`).

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::ParseStream;

/// The keyword of the one field option, `#[event(key)]` / `#[command(key)]`.
pub mod kw {
    syn::custom_keyword!(key);
}

/// Collects errors so a macro reports all of them instead of the first.
#[derive(Default)]
pub struct Errors {
    all: Option<syn::Error>,
    count: usize,
}

impl Errors {
    /// Records an error at the span of `tokens`.
    pub fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error at `span`.
    pub fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Records an error.
    pub fn push(&mut self, error: syn::Error) {
        self.count += 1;
        match &mut self.all {
            Some(all) => all.combine(error),
            None => self.all = Some(error),
        }
    }

    /// How many errors were recorded so far: compare before and after a validation step to know
    /// whether it failed.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The collected errors as `compile_error!` invocations, if there are any.
    pub fn into_compile_errors(self) -> Option<TokenStream> {
        self.all.map(|e| e.to_compile_error())
    }
}

/// The loop behind the option parser: runs `one` for each comma-separated option; an option that
/// does not parse is reported and skipped up to the next comma, a missing comma is reported, so
/// every mistake in the list is reported. Returns whether a `crate = ...` option failed.
fn each_option(
    input: ParseStream,
    errors: &mut Errors,
    mut one: impl FnMut(ParseStream, &mut Errors) -> syn::Result<()>,
) -> bool {
    let mut crate_failed = false;
    while !input.is_empty() {
        let is_crate = input.peek(syn::Token![crate]);
        if let Err(error) = one(input, errors) {
            errors.push(error);
            crate_failed |= is_crate;
            skip_to_comma(input);
        }
        if input.is_empty() {
            break;
        }
        if let Err(error) = input.parse::<syn::Token![,]>() {
            errors.push(syn::Error::new(
                error.span(),
                "expected `,` between two options",
            ));
            crate_failed |= is_crate;
            skip_to_comma(input);
            // Consume the comma, if any, and go on with the next option.
            let _ = input.parse::<Option<syn::Token![,]>>();
        }
    }
    crate_failed
}

/// Skips token trees up to (not including) the next top-level comma.
fn skip_to_comma(input: ParseStream) {
    while !input.is_empty() && !input.peek(syn::Token![,]) {
        let _ = input.parse::<proc_macro2::TokenTree>();
    }
}

/// The error for an option keyword the macro does not know.
pub fn unknown_option(input: ParseStream, message: impl Fn(&str) -> String) -> syn::Error {
    match input
        .fork()
        .call(<syn::Ident as syn::ext::IdentExt>::parse_any)
    {
        Ok(ident) => syn::Error::new(ident.span(), message(&ident.to_string())),
        Err(_) => input.error(message("")),
    }
}

/// `= "value"` after an option keyword; `keyword` is where to point when the value is missing.
pub fn parse_str_value(
    input: ParseStream,
    keyword: Span,
    option: &str,
) -> syn::Result<syn::LitStr> {
    parse_str_value_like(input, keyword, option, "\"...\"")
}

/// `= "value"` after an option keyword, like [`parse_str_value`], with `example` (a quoted string)
/// as the value to show in errors.
pub fn parse_str_value_like(
    input: ParseStream,
    keyword: Span,
    option: &str,
    example: &str,
) -> syn::Result<syn::LitStr> {
    let value = parse_value(input, keyword, option, example)?;
    if input.peek(syn::LitStr) {
        return input.parse();
    }
    Err(syn::Error::new(
        value,
        format!("the value of `{option}` is a string literal: `{option} = {example}`"),
    ))
}

/// Consumes the `=` after an option keyword and returns where its value is: the next token, or the
/// `=` if there is none.
pub fn parse_value(
    input: ParseStream,
    keyword: Span,
    option: &str,
    example: &str,
) -> syn::Result<Span> {
    let Some(eq) = input.parse::<Option<syn::Token![=]>>()? else {
        return Err(syn::Error::new(
            keyword,
            format!("`{option}` needs a value: `{option} = {example}`"),
        ));
    };
    if input.is_empty() || input.peek(syn::Token![,]) {
        return Err(syn::Error::new(
            eq.span,
            format!("`{option}` needs a value: `{option} = {example}`"),
        ));
    }
    Ok(input.span())
}

/// Sets an option once; a second occurrence is an error at its span.
pub fn set_once<T>(slot: &mut Option<T>, value: T, span: Span, option: &str, errors: &mut Errors) {
    if slot.is_some() {
        errors.at(span, format!("duplicate option `{option}`: give it once"));
    } else {
        *slot = Some(value);
    }
}

/// A `crate = "path"` option's value, for users who renamed the `herald` dependency.
pub struct CratePath(pub syn::Path);

impl CratePath {
    /// The one import of the runtime's private module in generated code, as `__herald`: generated
    /// code names the runtime only through it, so a wrong `crate` path is reported once.
    pub fn import(path: Option<&CratePath>) -> TokenStream {
        let private = private_module();
        match path {
            Some(CratePath(path)) => quote::quote!(use #path::#private as __herald;),
            None => quote::quote!(
                use ::herald::#private as __herald;
            ),
        }
    }
}

/// The runtime's private module for this version of the macros, `__private_v{major}_{minor}`
/// (serde's and typetag's scheme): a macro crate that does not match the runtime then fails to
/// compile instead of generating code against another layout. The two crates share one version.
pub fn private_module() -> syn::Ident {
    quote::format_ident!(
        "__private_v{}_{}",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR")
    )
}

/// `crate = "path"`, after the `crate` keyword.
pub fn parse_crate_value(input: ParseStream, keyword: Span) -> syn::Result<CratePath> {
    let lit = parse_str_value(input, keyword, "crate")?;
    lit.parse_with(syn::Path::parse_mod_style)
        .map(CratePath)
        .map_err(|_| {
            syn::Error::new(
                lit.span(),
                "`crate` names the herald crate by its path: `crate = \"herald\"`, or the name \
                 you renamed the dependency to",
            )
        })
}

/// `= "duration"` after an option keyword; `example` is a quoted duration to show in errors. A bare
/// number is reported with the units it could mean.
pub fn parse_duration_value(
    input: ParseStream,
    keyword: Span,
    option: &str,
    example: &str,
) -> syn::Result<syn::LitStr> {
    if input.peek(syn::Token![=]) && input.peek2(syn::LitInt) {
        input.parse::<syn::Token![=]>()?;
        let number = input.parse::<syn::LitInt>()?;
        let digits = number.base10_digits();
        return Err(syn::Error::new(
            number.span(),
            format!(
                "`{option}` is a duration with a unit, in quotes: `{option} = \"{digits}ms\"` or \
                 `\"{digits}s\"`"
            ),
        ));
    }
    parse_str_value_like(input, keyword, option, example)
}

/// What kind of value an option of a [`Spec`] takes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `option = "text"`, where the text cannot be empty or blank.
    NonEmptyStr,
    /// `option = "text"`, any text (the macro validates it).
    Str,
    /// `option = 2`.
    Int,
    /// `option = 8`: a whole number of at least 1 (the macro checks its range).
    Count,
    /// `option = field_name`: an identifier naming something in the item (a field, a parameter).
    Ident,
    /// `option`, with no value.
    Flag,
    /// `option = SomeType`: a Rust type, written without quotes.
    Type,
    /// `option = "5s"`: a duration with a unit (checked by the macro).
    Duration,
    /// `crate = "path"`.
    Crate,
    /// `option = expression` (a closure, a path to a function).
    Expr,
}

/// One option a macro takes: its keyword, the kind of value and an example value for errors.
pub struct Spec {
    /// The keyword.
    pub name: &'static str,
    /// What follows it.
    pub kind: Kind,
    /// A well-formed value, as written in source (`"\"user\""`, `user_id`, `2`).
    pub example: &'static str,
}

/// The value of a parsed option.
pub enum Value {
    /// A string literal.
    Str(syn::LitStr),
    /// An integer literal.
    Int(syn::LitInt),
    /// An identifier.
    Ident(syn::Ident),
    /// A flag, present.
    Flag,
    /// A type.
    Type(syn::Type),
    /// A `crate = "..."` path.
    Crate(CratePath),
    /// An expression.
    Expr(Box<syn::Expr>),
}

/// One parsed option: its keyword, where it was written and its value.
pub struct Parsed {
    /// The keyword, as in its [`Spec`].
    pub name: &'static str,
    /// The span of the keyword.
    pub span: Span,
    /// The value.
    pub value: Value,
}

/// The options of a macro, parsed by one generic parser from the table of what the macro takes:
/// every mistake (unknown option, missing or wrong value, empty string, duplicate) is reported at
/// its token, the rest are returned. The flag tells whether a `crate` option failed, so generated
/// code cannot name the runtime. `unknown` words the error for a keyword not in `specs`.
pub fn parse_specs(
    tokens: TokenStream,
    specs: &[Spec],
    unknown: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> (Vec<Parsed>, bool) {
    let parser = |input: ParseStream| {
        let mut parsed: Vec<Parsed> = Vec::new();
        let crate_failed = each_option(input, errors, |input, errors| {
            let option = parse_one(input, specs, unknown)?;
            if parsed.iter().any(|p| p.name == option.name) {
                errors.at(
                    option.span,
                    format!("duplicate option `{}`: give it once", option.name),
                );
            } else {
                parsed.push(option);
            }
            Ok(())
        });
        Ok((parsed, crate_failed))
    };
    syn::parse::Parser::parse2(parser, tokens).unwrap_or_default()
}

/// Refuses a quoted value where the option wants a bare name or type: `{name} {what} without
/// quotes`.
fn refuse_quoted(input: ParseStream, name: &str, what: &str) -> syn::Result<()> {
    if input.peek(syn::LitStr) {
        let lit = input.parse::<syn::LitStr>()?;
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`{name}` {what} without quotes: `{name} = {}`",
                lit.value().trim()
            ),
        ));
    }
    Ok(())
}

/// One option of [`parse_specs`].
fn parse_one(
    input: ParseStream,
    specs: &[Spec],
    unknown: &dyn Fn(&str) -> String,
) -> syn::Result<Parsed> {
    let keyword = input
        .fork()
        .call(<syn::Ident as syn::ext::IdentExt>::parse_any)
        .map_err(|_| input.error(unknown("")))?;
    let Some(spec) = specs.iter().find(|s| keyword == s.name) else {
        return Err(syn::Error::new(
            keyword.span(),
            unknown(&keyword.to_string()),
        ));
    };
    input.call(<syn::Ident as syn::ext::IdentExt>::parse_any)?;
    let span = keyword.span();
    let (name, example) = (spec.name, spec.example);
    let value = match spec.kind {
        Kind::NonEmptyStr => {
            let lit = parse_str_value_like(input, span, name, example)?;
            if lit.value().trim().is_empty() {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("`{name}` cannot be empty: write e.g. `{name} = {example}`"),
                ));
            }
            Value::Str(lit)
        }
        Kind::Str => Value::Str(parse_str_value_like(input, span, name, example)?),
        Kind::Int | Kind::Count => {
            let least = if spec.kind == Kind::Count { 1 } else { 0 };
            let at = parse_value(input, span, name, example)?;
            let whole = || format!("`{name}` is a whole number: `{name} = {example}`");
            if input.peek(syn::Token![-]) && input.peek2(syn::Lit) {
                // syn joins `-` and the literal into one token whose span is only the `-` on
                // stable Rust: point at both.
                let (minus, number) =
                    (input.parse::<syn::Token![-]>()?, input.parse::<syn::Lit>()?);
                return Err(syn::Error::new_spanned(
                    quote::quote!(#minus #number),
                    format!("`{name}` cannot be negative: write `{name} = {least}` or more, e.g. `{name} = {example}`"),
                ));
            }
            match input.parse::<syn::Lit>() {
                Ok(syn::Lit::Int(int)) => Value::Int(int),
                Ok(syn::Lit::Str(text)) => {
                    let number = text
                        .value()
                        .trim()
                        .parse::<u64>()
                        .map_or_else(|_| example.to_owned(), |n| n.to_string());
                    return Err(syn::Error::new(
                        text.span(),
                        format!("`{name}` is a number, not a string: `{name} = {number}`"),
                    ));
                }
                Ok(other) => return Err(syn::Error::new(other.span(), whole())),
                Err(_) => return Err(syn::Error::new(at, whole())),
            }
        }
        Kind::Ident => {
            let at = parse_value(input, span, name, example)?;
            refuse_quoted(input, name, "names it")?;
            Value::Ident(input.parse::<syn::Ident>().map_err(|_| {
                syn::Error::new(at, format!("`{name}` is a name: `{name} = {example}`"))
            })?)
        }
        Kind::Flag => {
            if input.peek(syn::Token![=]) {
                return Err(input.error(format!("`{name}` takes no value: write `{name}`")));
            }
            Value::Flag
        }
        Kind::Type => {
            let at = parse_value(input, span, name, example)?;
            refuse_quoted(input, name, "names a type")?;
            Value::Type(input.parse::<syn::Type>().map_err(|_| {
                syn::Error::new(at, format!("`{name}` is a type: `{name} = {example}`"))
            })?)
        }
        Kind::Duration => Value::Str(parse_duration_value(input, span, name, example)?),
        Kind::Crate => Value::Crate(parse_crate_value(input, span)?),
        Kind::Expr => {
            let at = parse_value(input, span, name, example)?;
            Value::Expr(Box::new(input.parse::<syn::Expr>().map_err(|_| {
                syn::Error::new(
                    at,
                    format!("`{name}` takes an expression: `{name} = {example}`"),
                )
            })?))
        }
    };
    Ok(Parsed { name, span, value })
}
