//! Parsing of macro options shared by the macros: keywords, `name = value` pairs and an error
//! collector that reports every mistake at once (serde's `Ctxt`).

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};

/// The option keywords herald's macros accept.
pub mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(topic);
    syn::custom_keyword!(version);
    syn::custom_keyword!(key);
    syn::custom_keyword!(group);
}

/// Collects errors so a macro reports all of them instead of the first.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

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
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// The collected errors as `compile_error!` invocations, if there are any.
    pub fn into_compile_errors(self) -> Option<TokenStream> {
        self.0.map(|e| e.to_compile_error())
    }
}

/// `= "value"` after an option keyword.
pub fn parse_str_value(input: ParseStream) -> syn::Result<syn::LitStr> {
    input.parse::<syn::Token![=]>()?;
    input.parse()
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
    /// The path generated code uses to reach the runtime's private module.
    pub fn private(path: Option<&CratePath>) -> TokenStream {
        match path {
            Some(CratePath(path)) => quote::quote!(#path::__private),
            None => quote::quote!(::herald::__private),
        }
    }
}

impl Parse for CratePath {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let lit = parse_str_value(input)?;
        lit.parse_with(syn::Path::parse_mod_style)
            .map(CratePath)
            .map_err(|_| syn::Error::new(lit.span(), "expected a crate path such as `\"herald\"`"))
    }
}
