//! `perdure-macros` owns the attribute macros that declare an async fn as
//! a typed activity or orchestrator (re-exported as `perdure::activity` and
//! `perdure::orchestrator`). Each keeps the function and adds a unit struct
//! named after it in PascalCase (`charge_card` -> `ChargeCard`), which
//! implements `perdure::Activity` or `perdure::Orchestrator` (name, input
//! and output types taken from the signature) and `perdure::Register`, so
//! that `registry.register(ChargeCard)` and `ctx.call(ChargeCard, &input)`
//! are checked by the compiler. `#[activity(name = "Charge")]` registers
//! under another name. `#[entity_operation(Counter)]` declares a plain fn
//! of an entity's state as one of its operations (`perdure::EntityOperation`).

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::{
    parse_macro_input, FnArg, GenericArgument, Ident, ItemFn, LitStr, PathArguments, ReturnType,
    Type,
};

#[derive(Clone, Copy)]
enum Kind {
    Activity,
    Orchestrator,
}

/// Declares an `async fn(ctx: ActivityContext, input: I) -> Result<O,
/// Failure>` (the input may be left out) as a typed activity.
#[proc_macro_attribute]
pub fn activity(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Activity, attr, item)
}

/// Declares an `async fn(ctx: OrchestrationContext, input: I) ->
/// Result<O, Failure>` (the input may be left out) as a typed orchestrator.
#[proc_macro_attribute]
pub fn orchestrator(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Orchestrator, attr, item)
}

/// A compile error that keeps the function, so that only the error shows.
fn keep_with_error(f: &ItemFn, e: syn::Error) -> TokenStream {
    let e = e.to_compile_error();
    quote!(#e #f).into()
}

/// The struct a declaration makes (PascalCase of the function's name) and
/// the name it registers under (that, unless `name = "..."` said another).
fn declared(f: &ItemFn, name: Option<LitStr>) -> (Ident, LitStr) {
    let struct_name = pascal(&f.sig.ident.to_string());
    let name = name.unwrap_or_else(|| LitStr::new(&struct_name, Span::call_site()));
    (Ident::new(&struct_name, Span::call_site()), name)
}

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

/// `T` of a return type `Result<T, E>` (or any `X<T, ...>`).
fn output_type(ret: &ReturnType) -> Option<Type> {
    let ReturnType::Type(_, ty) = ret else {
        return None;
    };
    let Type::Path(p) = ty.as_ref() else {
        return None;
    };
    let last = p.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    })
}

fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut name: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("expected `name = \"...\"`"))
        }
    });
    parse_macro_input!(attr with parser);
    let f = parse_macro_input!(item as ItemFn);
    let what = match kind {
        Kind::Activity => "an activity",
        Kind::Orchestrator => "an orchestrator",
    };
    // An error keeps the function, so that only the error shows.
    let fail = |e: syn::Error| keep_with_error(&f, e);
    if f.sig.asyncness.is_none() {
        return fail(syn::Error::new_spanned(
            f.sig.fn_token,
            format!("{what} is an `async fn`"),
        ));
    }
    let inputs: Vec<&FnArg> = f.sig.inputs.iter().collect();
    let input_ty: Type = match inputs.as_slice() {
        [_ctx] => syn::parse_quote!(()),
        [_ctx, FnArg::Typed(arg)] => (*arg.ty).clone(),
        _ => {
            return fail(syn::Error::new_spanned(
                &f.sig.inputs,
                format!("{what} takes its context and at most one input (several values as a tuple or struct)"),
            ))
        }
    };
    let Some(output_ty) = output_type(&f.sig.output) else {
        return fail(syn::Error::new_spanned(
            &f.sig,
            format!("{what} returns `Result<Output, perdure::Failure>`"),
        ));
    };
    let fn_ident = &f.sig.ident;
    let (struct_ident, name) = declared(&f, name);
    let vis = &f.vis;
    let call = if inputs.len() == 1 {
        quote!(#fn_ident(ctx))
    } else {
        quote!(#fn_ident(ctx, input))
    };
    let (trait_path, ctx_ty, register) = match kind {
        Kind::Activity => (
            quote!(::perdure::Activity),
            quote!(::perdure::ActivityContext),
            quote!(registry.register_activity(self);),
        ),
        Kind::Orchestrator => (
            quote!(::perdure::Orchestrator),
            quote!(::perdure::OrchestrationContext),
            quote!(registry.register_orchestrator(self);),
        ),
    };
    let doc = format!(
        "The {} `{}` (declared by `{fn_ident}`).",
        match kind {
            Kind::Activity => "activity",
            Kind::Orchestrator => "orchestrator",
        },
        name.value()
    );
    quote! {
        #[doc = #doc]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #struct_ident;

        impl #trait_path for #struct_ident {
            const NAME: &'static str = #name;
            type Input = #input_ty;
            type Output = #output_ty;
            #[allow(unused_variables)]
            fn run(
                &self,
                ctx: #ctx_ty,
                input: Self::Input,
            ) -> impl ::std::future::Future<
                Output = ::std::result::Result<Self::Output, ::perdure::Failure>,
            > + ::std::marker::Send {
                #call
            }
        }

        impl ::perdure::Register for #struct_ident {
            fn register(self, registry: &mut ::perdure::Registry) {
                #register
            }
        }

        #f
    }
    .into()
}

/// Declares `fn(state: &mut State, input: I) -> Result<O, Failure>` (the
/// input may be left out, and a first `ctx: &EntityContext` parameter
/// added) as an operation of entity `E`: `#[entity_operation(E)]` or
/// `#[entity_operation(E, name = "add")]`.
#[proc_macro_attribute]
pub fn entity_operation(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(
        attr with syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated
    );
    let mut f = parse_macro_input!(item as ItemFn);
    // The state is `&mut State` because the trait says so, even when it
    // is a Vec or a String.
    f.attrs.push(syn::parse_quote!(#[allow(clippy::ptr_arg)]));
    let f = f;
    let fail = |e: syn::Error| keep_with_error(&f, e);
    let mut entity: Option<syn::Path> = None;
    let mut name: Option<LitStr> = None;
    for meta in &args {
        match meta {
            syn::Meta::Path(p) if entity.is_none() => entity = Some(p.clone()),
            syn::Meta::NameValue(nv) if nv.path.is_ident("name") => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => name = Some(s.clone()),
                other => return fail(syn::Error::new_spanned(other, "expected `name = \"...\"`")),
            },
            other => {
                return fail(syn::Error::new_spanned(
                    other,
                    "expected the entity's type, then optionally `name = \"...\"`",
                ))
            }
        }
    }
    let Some(entity) = entity else {
        return fail(syn::Error::new(
            Span::call_site(),
            "name the entity: `#[entity_operation(Counter)]`",
        ));
    };
    if let Some(a) = &f.sig.asyncness {
        return fail(syn::Error::new_spanned(
            a,
            "an entity operation is a plain fn of the state (it runs inside the entity's turn)",
        ));
    }
    let is_ctx = |arg: &FnArg| match arg {
        FnArg::Typed(t) => matches!(t.ty.as_ref(), Type::Reference(r)
            if matches!(r.elem.as_ref(), Type::Path(p)
                if p.path.segments.last().is_some_and(|s| s.ident == "EntityContext"))),
        FnArg::Receiver(_) => false,
    };
    let inputs: Vec<&FnArg> = f.sig.inputs.iter().collect();
    let with_ctx = inputs.first().is_some_and(|a| is_ctx(a));
    let rest = if with_ctx { &inputs[1..] } else { &inputs[..] };
    let input_ty: Type = match rest {
        [_state] => syn::parse_quote!(()),
        [_state, FnArg::Typed(arg)] => (*arg.ty).clone(),
        _ => {
            return fail(syn::Error::new_spanned(
                &f.sig.inputs,
                "an entity operation takes `&mut` its entity's state and at most one input (after an optional `&EntityContext`)",
            ))
        }
    };
    let Some(output_ty) = output_type(&f.sig.output) else {
        return fail(syn::Error::new_spanned(
            &f.sig,
            "an entity operation returns `Result<Output, perdure::Failure>`",
        ));
    };
    let fn_ident = &f.sig.ident;
    let (struct_ident, name) = declared(&f, name);
    let vis = &f.vis;
    let call = match (with_ctx, rest.len()) {
        (true, 1) => quote!(#fn_ident(ctx, state)),
        (true, _) => quote!(#fn_ident(ctx, state, input)),
        (false, 1) => quote!(#fn_ident(state)),
        (false, _) => quote!(#fn_ident(state, input)),
    };
    let doc = format!(
        "The operation `{}` of entity `{}` (declared by `{fn_ident}`).",
        name.value(),
        quote!(#entity)
    );
    quote! {
        #[doc = #doc]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #struct_ident;

        impl ::perdure::EntityOperation for #struct_ident {
            type Entity = #entity;
            const NAME: &'static str = #name;
            type Input = #input_ty;
            type Output = #output_ty;
            #[allow(unused_variables)]
            fn run(
                &self,
                ctx: &::perdure::EntityContext,
                state: &mut <#entity as ::perdure::Entity>::State,
                input: Self::Input,
            ) -> ::std::result::Result<Self::Output, ::perdure::Failure> {
                #call
            }
        }

        #f
    }
    .into()
}
