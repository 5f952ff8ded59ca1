//! The `#[llmperf::bench]` attribute. Use it through the `llmperf` crate.
//!
//! It emits nothing but a static registration entry pointing at the
//! function; everything it names goes through `llmperf::__private`, so
//! the runtime can change without breaking user code.

use proc_macro::TokenStream;
use proc_macro2::Span;
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

struct Options {
    name: Option<String>,
    group: Option<String>,
    requests: Option<u64>,
    concurrency: Option<usize>,
    concurrency_levels: Vec<usize>,
    rates: Vec<f64>,
    auto_sweep: bool,
    krate: syn::Path,
}

fn parse_options(args: proc_macro2::TokenStream) -> syn::Result<Options> {
    let mut options = Options {
        name: None,
        group: None,
        requests: None,
        concurrency: None,
        concurrency_levels: Vec::new(),
        rates: Vec::new(),
        auto_sweep: false,
        krate: syn::parse_quote!(::llmperf),
    };
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut seen = std::collections::HashSet::new();
    for meta in metas {
        let Meta::NameValue(pair) = &meta else {
            return Err(syn::Error::new_spanned(
                meta,
                "expected `key = value` (name, group, requests, concurrency, rates, sweep, crate)",
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
        match key.as_str() {
            "name" => options.name = Some(string(&pair.value)?),
            "group" => options.group = Some(string(&pair.value)?),
            "requests" => options.requests = Some(int(&pair.value)?),
            "concurrency" => match &pair.value {
                Expr::Array(array) => {
                    options.concurrency_levels = nonempty(array, int)?;
                }
                other => options.concurrency = Some(int(other)?),
            },
            "rates" => match &pair.value {
                Expr::Array(array) => options.rates = nonempty(array, rate)?,
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "expected a list of rates, e.g. rates = [1, 2.5, 5]",
                    ))
                }
            },
            "sweep" => {
                if string(&pair.value)? != "auto" {
                    return Err(syn::Error::new_spanned(
                        &pair.value,
                        "the only sweep by name is \"auto\"; list levels with concurrency = [..] or rates = [..]",
                    ));
                }
                options.auto_sweep = true;
            }
            "crate" => {
                options.krate = match &pair.value {
                    Expr::Path(path) => path.path.clone(),
                    other => return Err(syn::Error::new_spanned(other, "expected a path")),
                }
            }
            _ => {
                return Err(syn::Error::new_spanned(
                    &pair.path,
                    "unknown option: expected name, group, requests, concurrency, rates, sweep or crate",
                ))
            }
        }
    }
    Ok(options)
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

fn expand(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
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
    let krate = &options.krate;
    let name = options.name.unwrap_or_else(|| ident.to_string());
    let group = match options.group {
        Some(group) => quote!(::core::option::Option::Some(#group)),
        None => quote!(::core::option::Option::None),
    };
    let requests = match options.requests {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let concurrency = match options.concurrency {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let levels = &options.concurrency_levels;
    let rates = &options.rates;
    let auto_sweep = options.auto_sweep;
    let sweeps =
        usize::from(!levels.is_empty()) + usize::from(!rates.is_empty()) + usize::from(auto_sweep);
    if sweeps > 1 {
        return Err(syn::Error::new(
            Span::call_site(),
            "choose one sweep: concurrency = [..], rates = [..] or sweep = \"auto\"",
        ));
    }
    let entry = format_ident!(
        "__LLMPERF_BENCH_{}",
        ident.to_string().to_uppercase(),
        span = Span::call_site()
    );
    Ok(quote! {
        #function

        #[doc(hidden)]
        #[#krate::__private::linkme::distributed_slice(#krate::__private::BENCHES)]
        #[linkme(crate = #krate::__private::linkme)]
        static #entry: #krate::__private::BenchEntry = #krate::__private::BenchEntry {
            name: #name,
            group: #group,
            file: ::core::file!(),
            line: ::core::line!(),
            requests: #requests,
            concurrency: #concurrency,
            concurrency_levels: &[#(#levels),*],
            rates: &[#(#rates),*],
            auto_sweep: #auto_sweep,
            build: #ident,
        };
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(args: proc_macro2::TokenStream) -> String {
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
        assert_eq!(
            (
                options.name.as_deref(),
                options.group.as_deref(),
                options.requests
            ),
            (Some("a"), Some("g"), Some(3))
        );
    }
}
