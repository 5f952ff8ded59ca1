//! The `#[llmperf::bench]` attribute. Use it through the `llmperf` crate.
//!
//! It emits nothing but a static registration entry pointing at the
//! function; everything it names goes through `llmperf::__private`, so
//! the runtime can change without breaking user code.

use proc_macro::TokenStream;
use proc_macro2::{Ident, Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ItemFn, Lit, Meta, Token};

/// Registers a function returning `llmperf::Benchmark` as an endpoint benchmark.
///
/// Options: `name = "…"`, `group = "…"`, `requests = N`, `concurrency = N`
/// or a sweep `concurrency = [1, 4, 16]`, a rate sweep `rates = [1, 2.5, 5]`
/// (requests per second), `sweep = "auto"`, and `crate = path` when the
/// `llmperf` dependency is renamed. Each at most once: an unknown or
/// repeated option is a compile error naming it.
#[proc_macro_attribute]
pub fn bench(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// The options besides `crate`: each sets the field of the same name of
/// `llmperf::registry::BenchOptions`, with its value checked (so a mistake
/// is reported on the value) and written by the function beside it.
const OPTIONS: &[(&str, WriteValue)] = &[
    ("name", string_value),
    ("group", string_value),
    ("requests", requests_value),
    ("concurrency", concurrency_value),
    ("rates", rates_value),
    ("sweep", sweep_value),
];

/// Checks an option's value and writes it as the field's value, naming
/// runtime types through `llmperf::__private` (the first argument).
type WriteValue = fn(&TokenStream2, &Expr) -> syn::Result<TokenStream2>;

/// The attribute's arguments: the `llmperf` path and the fields of
/// `BenchOptions` they set.
struct Options {
    krate: syn::Path,
    fields: Vec<Field>,
}

/// `key: Some(value)` in the emitted `BenchOptions`.
struct Field {
    key: Ident,
    value: TokenStream2,
}

impl quote::ToTokens for Field {
    fn to_tokens(&self, tokens: &mut TokenStream2) {
        let Field { key, value } = self;
        tokens.extend(quote!(#key: ::core::option::Option::Some(#value)));
    }
}

/// `name, group, …, sweep` and then `crate` joined by `separator`, `last`.
fn option_names(separator: &str, last: &str) -> String {
    let names: Vec<&str> = OPTIONS.iter().map(|(name, _)| *name).collect();
    format!("{}{last}crate", names.join(separator))
}

fn parse_options(args: TokenStream2) -> syn::Result<Options> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut pairs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for meta in metas {
        let Meta::NameValue(pair) = meta else {
            return Err(syn::Error::new_spanned(
                meta,
                format!("expected `key = value` ({})", option_names(", ", ", ")),
            ));
        };
        let key = pair
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        // A later value would silently replace the first.
        if !key.is_empty() && !seen.insert(key.clone()) {
            return Err(syn::Error::new_spanned(
                &pair.path,
                format!("`{key}` is given twice: keep one"),
            ));
        }
        pairs.push(pair);
    }
    let mut krate: syn::Path = syn::parse_quote!(::llmperf);
    if let Some(pair) = pairs.iter().find(|p| p.path.is_ident("crate")) {
        krate = match &pair.value {
            Expr::Path(path) => path.path.clone(),
            other => return Err(syn::Error::new_spanned(other, "expected a path")),
        };
    }
    let private = quote!(#krate::__private);
    let mut fields = Vec::new();
    for pair in pairs.iter().filter(|p| !p.path.is_ident("crate")) {
        let write = pair.path.get_ident().and_then(|key| {
            let (_, write) = OPTIONS.iter().find(|(name, _)| key == name)?;
            Some((key, write))
        });
        let Some((key, write)) = write else {
            return Err(syn::Error::new_spanned(
                &pair.path,
                format!("unknown option: expected {}", option_names(", ", " or ")),
            ));
        };
        fields.push(Field {
            key: key.clone(),
            value: write(&private, &pair.value)?,
        });
    }
    let sweeps = pairs
        .iter()
        .filter(|p| {
            p.path.is_ident("rates")
                || p.path.is_ident("sweep")
                || (p.path.is_ident("concurrency") && matches!(p.value, Expr::Array(_)))
        })
        .count();
    if sweeps > 1 {
        return Err(syn::Error::new(
            Span::call_site(),
            "choose one sweep: concurrency = [..], rates = [..] or sweep = \"auto\"",
        ));
    }
    Ok(Options { krate, fields })
}

fn string_value(_: &TokenStream2, value: &Expr) -> syn::Result<TokenStream2> {
    let text = string(value)?;
    Ok(quote!(#text))
}

fn requests_value(_: &TokenStream2, value: &Expr) -> syn::Result<TokenStream2> {
    let requests: u64 = int(value)?;
    Ok(quote!(#requests))
}

fn concurrency_value(private: &TokenStream2, value: &Expr) -> syn::Result<TokenStream2> {
    Ok(match value {
        Expr::Array(array) => {
            let levels: Vec<usize> = nonempty(array, int)?;
            quote!(#private::ConcurrencyOption::Levels(&[#(#levels),*]))
        }
        other => {
            let concurrency: usize = int(other)?;
            quote!(#private::ConcurrencyOption::Fixed(#concurrency))
        }
    })
}

fn rates_value(_: &TokenStream2, value: &Expr) -> syn::Result<TokenStream2> {
    match value {
        Expr::Array(array) => {
            let rates = nonempty(array, rate)?;
            Ok(quote!(&[#(#rates),*]))
        }
        other => Err(syn::Error::new_spanned(
            other,
            "expected a list of rates, e.g. rates = [1, 2.5, 5]",
        )),
    }
}

fn sweep_value(private: &TokenStream2, value: &Expr) -> syn::Result<TokenStream2> {
    if string(value)? != "auto" {
        return Err(syn::Error::new_spanned(
            value,
            "the only sweep by name is \"auto\"; list levels with concurrency = [..] or rates = [..]",
        ));
    }
    Ok(quote!(#private::NamedSweep::Auto))
}

fn nonempty<T>(array: &syn::ExprArray, parse: fn(&Expr) -> syn::Result<T>) -> syn::Result<Vec<T>> {
    if array.elems.is_empty() {
        return Err(syn::Error::new_spanned(
            array,
            "expected at least one level",
        ));
    }
    array.elems.iter().map(parse).collect()
}

fn rate(value: &Expr) -> syn::Result<f64> {
    let parsed = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse::<f64>()?,
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<f64>()?,
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "expected a number of requests per second",
            ))
        }
    };
    if parsed.is_finite() && parsed > 0.0 {
        Ok(parsed)
    } else {
        Err(syn::Error::new_spanned(value, "a rate must be positive"))
    }
}

fn string(value: &Expr) -> syn::Result<String> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.value()),
        other => Err(syn::Error::new_spanned(other, "expected a string literal")),
    }
}

fn int<N: std::str::FromStr>(value: &Expr) -> syn::Result<N>
where
    N::Err: std::fmt::Display,
{
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => {
            let n: N = i.base10_parse()?;
            if i.base10_digits() == "0" {
                return Err(syn::Error::new_spanned(i, "must be 1 or more"));
            }
            Ok(n)
        }
        other => Err(syn::Error::new_spanned(
            other,
            "expected an integer literal",
        )),
    }
}

fn expand(args: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let options = parse_options(args)?;
    let function: ItemFn = syn::parse2(item)?;
    let signature = &function.sig;
    if !signature.inputs.is_empty() {
        return Err(syn::Error::new_spanned(
            &signature.inputs,
            "a benchmark function takes no arguments and returns llmperf::Benchmark",
        ));
    }
    if signature.asyncness.is_some() {
        return Err(syn::Error::new_spanned(
            signature.asyncness,
            "a benchmark function is not async: it returns the spec, the harness runs it",
        ));
    }
    if !signature.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &signature.generics,
            "a benchmark function cannot be generic",
        ));
    }
    let ident = &signature.ident;
    let Options { krate, fields } = options;
    let private = quote!(#krate::__private);
    let function_name = ident.to_string();
    let entry = format_ident!(
        "__LLMPERF_BENCH_{}",
        function_name.to_uppercase(),
        span = Span::call_site()
    );
    Ok(quote! {
        #function

        #[doc(hidden)]
        #[#private::linkme::distributed_slice(#private::BENCHES)]
        #[linkme(crate = #private::linkme)]
        static #entry: #private::BenchEntry = #private::BenchEntry {
            function: #function_name,
            file: ::core::file!(),
            line: ::core::line!(),
            options: #private::BenchOptions {
                #(#fields,)*
                ..#private::BenchOptions::DEFAULT
            },
            build: #ident,
        };
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(args: TokenStream2) -> String {
        match parse_options(args) {
            Ok(_) => panic!("accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_key_given_twice_is_an_error_naming_it() {
        assert_eq!(
            error(quote!(requests = 10, group = "g", requests = 20)),
            "`requests` is given twice: keep one"
        );
        assert_eq!(
            error(quote!(concurrency = 4, concurrency = [1, 2])),
            "`concurrency` is given twice: keep one"
        );
        let options = parse_options(quote!(name = "a", group = "g", requests = 3)).unwrap();
        let fields = &options.fields;
        assert_eq!(
            quote!(#(#fields),*).to_string(),
            quote!(
                name: ::core::option::Option::Some("a"),
                group: ::core::option::Option::Some("g"),
                requests: ::core::option::Option::Some(3u64)
            )
            .to_string()
        );
    }

    #[test]
    fn an_unknown_option_is_an_error_listing_the_options() {
        assert_eq!(
            error(quote!(repeats = 3)),
            "unknown option: expected name, group, requests, concurrency, rates, sweep or crate"
        );
    }

    #[test]
    fn each_option_sets_the_field_of_its_name_through_the_crate_path() {
        let options = parse_options(quote!(concurrency = [1, 4], crate = my_llmperf)).unwrap();
        let fields = &options.fields;
        assert_eq!(
            quote!(#(#fields),*).to_string(),
            quote!(concurrency: ::core::option::Option::Some(
                my_llmperf::__private::ConcurrencyOption::Levels(&[1usize, 4usize])
            ))
            .to_string()
        );
        assert_eq!(
            error(quote!(rates = [1], sweep = "auto")),
            "choose one sweep: concurrency = [..], rates = [..] or sweep = \"auto\""
        );
    }
}
