//! Generates `crates/warren-codec/src/generated.rs` from the AMQP 0-9-1 spec XML and RabbitMQ's
//! overlay, both kept in `crates/warren-codec/spec/`.
//!
//! The output is piped through `rustfmt` so that `cargo fmt` leaves it alone and the staleness test
//! can compare bytes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SPEC: &str = "crates/warren-codec/spec/amqp0-9-1.stripped.extended.xml";
const OVERLAY: &str = "crates/warren-codec/spec/rabbitmq-extensions.xml";
const OUTPUT: &str = "crates/warren-codec/src/generated.rs";

/// A `<constant>` element.
#[derive(Debug, Clone)]
struct Constant {
    name: String,
    value: u32,
    class: Option<String>,
}

/// A `<field>` of a method, with its domain resolved to a primitive type.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    ty: String,
    reserved: bool,
}

/// A `<method>` element.
#[derive(Debug, Clone)]
struct MethodDef {
    name: String,
    index: u16,
    synchronous: bool,
    content: bool,
    server: bool,
    fields: Vec<Field>,
}

/// A `<class>` element.
#[derive(Debug, Clone)]
struct Class {
    name: String,
    index: u16,
    methods: Vec<MethodDef>,
}

#[derive(Debug, Default)]
struct Spec {
    constants: Vec<Constant>,
    classes: Vec<Class>,
}

fn attr<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> Result<&'a str, String> {
    node.attribute(name)
        .ok_or_else(|| format!("<{}> without {name}", node.tag_name().name()))
}

fn num<T: std::str::FromStr>(node: roxmltree::Node<'_, '_>, name: &str) -> Result<T, String> {
    attr(node, name)?
        .parse()
        .map_err(|_| format!("<{}> {name} is not a number", node.tag_name().name()))
}

fn parse_into(
    spec: &mut Spec,
    xml: &str,
    domains: &mut HashMap<String, String>,
) -> Result<(), String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    for node in doc.root_element().children().filter(|n| n.is_element()) {
        match node.tag_name().name() {
            "constant" => spec.constants.push(Constant {
                name: attr(node, "name")?.to_string(),
                value: num(node, "value")?,
                class: node.attribute("class").map(str::to_string),
            }),
            "domain" => {
                domains.insert(
                    attr(node, "name")?.to_string(),
                    attr(node, "type")?.to_string(),
                );
            }
            "class" => {
                let name = attr(node, "name")?.to_string();
                let index = num(node, "index")?;
                let mut methods = Vec::new();
                for m in node.children().filter(|n| n.has_tag_name("method")) {
                    let mut fields = Vec::new();
                    for f in m.children().filter(|n| n.has_tag_name("field")) {
                        let ty = match (f.attribute("type"), f.attribute("domain")) {
                            (Some(t), _) => t.to_string(),
                            (None, Some(d)) => domains
                                .get(d)
                                .cloned()
                                .ok_or_else(|| format!("unknown domain {d}"))?,
                            (None, None) => return Err("field without type or domain".into()),
                        };
                        fields.push(Field {
                            name: attr(f, "name")?.to_string(),
                            ty,
                            reserved: f.attribute("reserved") == Some("1"),
                        });
                    }
                    methods.push(MethodDef {
                        name: attr(m, "name")?.to_string(),
                        index: num(m, "index")?,
                        synchronous: m.attribute("synchronous") == Some("1"),
                        content: m.attribute("content") == Some("1"),
                        server: m.children().any(|c| {
                            c.has_tag_name("chassis") && c.attribute("name") == Some("server")
                        }),
                        fields,
                    });
                }
                match spec.classes.iter_mut().find(|c| c.name == name) {
                    Some(existing) => existing.methods.extend(methods),
                    None => spec.classes.push(Class {
                        name,
                        index,
                        methods,
                    }),
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn camel(s: &str) -> String {
    s.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn snake(s: &str) -> String {
    match s {
        "type" => "kind".to_string(),
        _ => s.replace('-', "_"),
    }
}

fn rust_type(ty: &str) -> Result<&'static str, String> {
    Ok(match ty {
        "octet" => "u8",
        "short" => "u16",
        "long" => "u32",
        "longlong" | "timestamp" => "u64",
        "bit" => "bool",
        "shortstr" => "ShortStr",
        "longstr" => "LongStr",
        "table" => "FieldTable",
        other => return Err(format!("unknown field type {other}")),
    })
}

fn reader_call(ty: &str) -> Result<&'static str, String> {
    Ok(match ty {
        "octet" => "r.octet()?",
        "short" => "r.short()?",
        "long" => "r.long()?",
        "longlong" | "timestamp" => "r.longlong()?",
        "shortstr" => "r.short_str()?",
        "longstr" => "r.long_str()?",
        "table" => "FieldTable::decode(r)?",
        other => return Err(format!("no reader for {other}")),
    })
}

fn writer_stmt(ty: &str, expr: &str, reserved: bool) -> Result<String, String> {
    Ok(match (ty, reserved) {
        ("octet", _) => format!("buf.put_u8({expr});"),
        ("short", _) => format!("buf.put_u16({expr});"),
        ("long", _) => format!("buf.put_u32({expr});"),
        ("longlong" | "timestamp", _) => format!("buf.put_u64({expr});"),
        ("shortstr", true) => "buf.put_u8(0);".to_string(),
        ("shortstr", false) => format!("wire::put_short_str(buf, &{expr});"),
        ("longstr", true) => "buf.put_u32(0);".to_string(),
        ("longstr", false) => format!("wire::put_long_str(buf, &{expr});"),
        ("table", true) => "buf.put_u32(0);".to_string(),
        ("table", false) => format!("{expr}.encode(buf);"),
        (other, _) => return Err(format!("no writer for {other}")),
    })
}

/// Groups a method's fields into runs: consecutive bits share octets (eight to an octet).
enum Run<'a> {
    Bits(Vec<&'a Field>),
    One(&'a Field),
}

fn runs(fields: &[Field]) -> Vec<Run<'_>> {
    let mut out: Vec<Run<'_>> = Vec::new();
    for f in fields {
        if f.ty == "bit" {
            if let Some(Run::Bits(bits)) = out.last_mut()
                && bits.len() < 8
            {
                bits.push(f);
                continue;
            }
            out.push(Run::Bits(vec![f]));
        } else {
            out.push(Run::One(f));
        }
    }
    out
}

fn gen_method(out: &mut String, class: &Class, m: &MethodDef) -> Result<(), String> {
    let ty = format!("{}{}", camel(&class.name), camel(&m.name));
    let amqp = format!("{}.{}", class.name, m.name);
    let dir = if m.server {
        "sent by the client"
    } else {
        "sent by the server"
    };
    let fields: Vec<&Field> = m.fields.iter().filter(|f| !f.reserved).collect();
    writeln!(out, "/// `{amqp}` ({}/{}), {dir}.", class.index, m.index).ok();
    writeln!(out, "#[derive(Debug, Clone, PartialEq, Default)]").ok();
    if fields.is_empty() {
        writeln!(out, "pub struct {ty};").ok();
    } else {
        writeln!(out, "pub struct {ty} {{").ok();
        for f in &fields {
            writeln!(out, "    /// `{}` ({}).", f.name, f.ty).ok();
            writeln!(out, "    pub {}: {},", snake(&f.name), rust_type(&f.ty)?).ok();
        }
        writeln!(out, "}}").ok();
    }
    writeln!(out, "impl {ty} {{").ok();
    writeln!(
        out,
        "    /// Class id of `{amqp}`.\n    pub const CLASS_ID: u16 = {};",
        class.index
    )
    .ok();
    writeln!(
        out,
        "    /// Method id of `{amqp}`.\n    pub const METHOD_ID: u16 = {};",
        m.index
    )
    .ok();
    writeln!(
        out,
        "    /// The AMQP name.\n    pub const NAME: &'static str = \"{amqp}\";"
    )
    .ok();

    // decode
    let rname = if m.fields.is_empty() { "_r" } else { "r" };
    writeln!(
        out,
        "    fn decode({rname}: &mut Reader<'_>) -> Result<Self, FieldError> {{"
    )
    .ok();
    for (gi, run) in runs(&m.fields).iter().enumerate() {
        match run {
            Run::One(f) if f.reserved => writeln!(out, "let _ = {};", reader_call(&f.ty)?).ok(),
            Run::One(f) => writeln!(out, "let {} = {};", snake(&f.name), reader_call(&f.ty)?).ok(),
            Run::Bits(bits) => {
                if bits.iter().all(|b| b.reserved) {
                    writeln!(out, "let _ = r.octet()?;").ok();
                } else {
                    writeln!(out, "let bits{gi} = r.octet()?;").ok();
                    for (i, b) in bits.iter().enumerate().filter(|(_, b)| !b.reserved) {
                        writeln!(
                            out,
                            "let {} = bits{gi} & {:#04x} != 0;",
                            snake(&b.name),
                            1u8 << i
                        )
                        .ok();
                    }
                }
                None
            }
        };
    }
    if fields.is_empty() {
        writeln!(out, "Ok(Self)").ok();
    } else {
        let names: Vec<String> = fields.iter().map(|f| snake(&f.name)).collect();
        writeln!(out, "Ok(Self {{ {} }})", names.join(", ")).ok();
    }
    writeln!(out, "}}").ok();

    // encode
    let bname = if m.fields.is_empty() { "_buf" } else { "buf" };
    writeln!(out, "    fn encode(&self, {bname}: &mut BytesMut) {{").ok();
    for run in runs(&m.fields) {
        match run {
            Run::One(f) => {
                let expr = format!("self.{}", snake(&f.name));
                let expr = if f.reserved { "0".to_string() } else { expr };
                writeln!(out, "{}", writer_stmt(&f.ty, &expr, f.reserved)?).ok();
            }
            Run::Bits(bits) => {
                let terms: Vec<String> = bits
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| !b.reserved)
                    .map(|(i, b)| match i {
                        0 => format!("u8::from(self.{})", snake(&b.name)),
                        i => format!("(u8::from(self.{}) << {i})", snake(&b.name)),
                    })
                    .collect();
                let expr = if terms.is_empty() {
                    "0".to_string()
                } else {
                    terms.join(" | ")
                };
                writeln!(out, "buf.put_u8({expr});").ok();
            }
        }
    }
    writeln!(out, "}}\n}}").ok();
    writeln!(
        out,
        "impl From<{ty}> for Method {{ fn from(m: {ty}) -> Self {{ Method::{ty}(m) }} }}"
    )
    .ok();
    Ok(())
}

fn generate_from(spec: &Spec) -> Result<String, String> {
    let mut out = String::new();
    out.push_str(
        "// @generated by `cargo xtask codegen` from spec/amqp0-9-1.stripped.extended.xml and\n\
         // spec/rabbitmq-extensions.xml. Do not edit: change the generator or the spec and regenerate.\n\n\
         //! AMQP 0-9-1 constants, classes, methods and reply codes, generated from the spec.\n\n\
         use bytes::{BufMut, Bytes, BytesMut};\n\n\
         use crate::error::{CodecError, FieldError};\n\
         use crate::field_table::FieldTable;\n\
         use crate::strings::{LongStr, ShortStr};\n\
         use crate::wire::{self, Reader};\n\n",
    );

    // Frame constants.
    out.push_str("/// Frame type octets.\npub mod frame_type {\n");
    for c in spec
        .constants
        .iter()
        .filter(|c| c.name.starts_with("frame-") && c.value < 16)
    {
        let name = c.name.trim_start_matches("frame-").to_uppercase();
        writeln!(
            out,
            "    /// `{}`.\n    pub const {name}: u8 = {};",
            c.name, c.value
        )
        .ok();
    }
    out.push_str("}\n");
    for c in &spec.constants {
        match c.name.as_str() {
            "frame-min-size" => writeln!(
                out,
                "/// The smallest `frame_max` a peer may negotiate (`frame-min-size`).\npub const FRAME_MIN_SIZE: u32 = {};",
                c.value
            )
            .ok(),
            "frame-end" => writeln!(
                out,
                "/// The octet that ends every frame (`frame-end`).\npub const FRAME_END: u8 = {};",
                c.value
            )
            .ok(),
            _ => None,
        };
    }

    // Class ids.
    out.push_str("/// Class ids.\npub mod class {\n");
    for c in &spec.classes {
        writeln!(
            out,
            "    /// `{}`.\n    pub const {}: u16 = {};",
            c.name,
            c.name.to_uppercase(),
            c.index
        )
        .ok();
    }
    out.push_str("}\n");

    // Reply codes.
    let mut codes: Vec<&Constant> = spec
        .constants
        .iter()
        .filter(|c| c.class.is_some() || c.name == "reply-success")
        .collect();
    codes.sort_by_key(|c| c.value);
    out.push_str(
        "/// Reply codes for `connection.close`, `channel.close` and `basic.return`.\n\
         #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]\n#[repr(u16)]\npub enum ReplyCode {\n",
    );
    for c in &codes {
        let kind = c.class.as_deref().unwrap_or("success");
        writeln!(
            out,
            "    /// `{}` ({}, {kind}).\n    {} = {},",
            c.name,
            c.value,
            camel(&c.name),
            c.value
        )
        .ok();
    }
    out.push_str("}\nimpl ReplyCode {\n");
    out.push_str("    /// The numeric code.\n    pub const fn code(self) -> u16 { self as u16 }\n");
    out.push_str("    /// The code for a number, if AMQP or RabbitMQ defines it.\n    pub const fn from_code(code: u16) -> Option<Self> {\n        match code {\n");
    for c in &codes {
        writeln!(
            out,
            "            {} => Some(Self::{}),",
            c.value,
            camel(&c.name)
        )
        .ok();
    }
    out.push_str("            _ => None,\n        }\n    }\n");
    let hard: Vec<String> = codes
        .iter()
        .filter(|c| c.class.as_deref() == Some("hard-error"))
        .map(|c| format!("Self::{}", camel(&c.name)))
        .collect();
    writeln!(
        out,
        "    /// True for a connection error, false for a channel error or success.\n    pub const fn is_hard_error(self) -> bool {{ matches!(self, {}) }}",
        hard.join(" | ")
    )
    .ok();
    out.push_str("    /// The name RabbitMQ puts before reply texts, e.g. `NOT_FOUND`.\n    pub const fn name(self) -> &'static str {\n        match self {\n");
    for c in &codes {
        writeln!(
            out,
            "            Self::{} => \"{}\",",
            camel(&c.name),
            c.name.to_uppercase().replace('-', "_")
        )
        .ok();
    }
    out.push_str("        }\n    }\n}\n");

    // Method structs.
    for class in &spec.classes {
        for m in &class.methods {
            gen_method(&mut out, class, m)?;
        }
    }

    // The Method enum.
    let all: Vec<(&Class, &MethodDef, String)> = spec
        .classes
        .iter()
        .flat_map(|c| {
            c.methods
                .iter()
                .map(move |m| (c, m, format!("{}{}", camel(&c.name), camel(&m.name))))
        })
        .collect();
    out.push_str("/// Every method of AMQP 0-9-1 and of RabbitMQ's extensions.\n#[derive(Debug, Clone, PartialEq)]\npub enum Method {\n");
    for (c, m, ty) in &all {
        writeln!(out, "    /// `{}.{}`.\n    {ty}({ty}),", c.name, m.name).ok();
    }
    out.push_str("}\nimpl Method {\n");
    let arms =
        |out: &mut String, doc: &str, sig: &str, f: &dyn Fn(&Class, &MethodDef) -> String| {
            writeln!(
                out,
                "    /// {doc}\n    pub fn {sig} {{\n        match self {{"
            )
            .ok();
            for (c, m, ty) in &all {
                writeln!(out, "            Method::{ty}(_) => {},", f(c, m)).ok();
            }
            out.push_str("        }\n    }\n");
        };
    arms(
        &mut out,
        "The class id.",
        "class_id(&self) -> u16",
        &|c, _| c.index.to_string(),
    );
    arms(
        &mut out,
        "The method id within the class.",
        "method_id(&self) -> u16",
        &|_, m| m.index.to_string(),
    );
    arms(
        &mut out,
        "The AMQP name, e.g. `basic.publish`.",
        "name(&self) -> &'static str",
        &|c, m| format!("\"{}.{}\"", c.name, m.name),
    );
    arms(
        &mut out,
        "True when content (header and body frames) follows the method.",
        "has_content(&self) -> bool",
        &|_, m| m.content.to_string(),
    );
    arms(
        &mut out,
        "True when the spec marks the method synchronous.",
        "is_synchronous(&self) -> bool",
        &|_, m| m.synchronous.to_string(),
    );
    arms(
        &mut out,
        "True when a client may send the method (the server implements it).",
        "sent_by_client(&self) -> bool",
        &|_, m| m.server.to_string(),
    );
    out.push_str("    /// Decodes a method's arguments, given its class and method ids.\n    pub fn decode(class_id: u16, method_id: u16, args: &Bytes) -> Result<Method, CodecError> {\n        match (class_id, method_id) {\n");
    for (c, m, ty) in &all {
        writeln!(out, "            ({}, {}) => decode_args(args, {ty}::NAME, class_id, method_id, {ty}::decode).map(Method::{ty}),", c.index, m.index).ok();
    }
    out.push_str("            _ => Err(CodecError::UnknownMethod { class_id, method_id }),\n        }\n    }\n");
    out.push_str("    /// Writes class id, method id and arguments: a method frame's payload.\n    pub fn encode(&self, buf: &mut BytesMut) {\n        buf.put_u16(self.class_id());\n        buf.put_u16(self.method_id());\n        match self {\n");
    for (_, _, ty) in &all {
        writeln!(out, "            Method::{ty}(m) => m.encode(buf),").ok();
    }
    out.push_str("        }\n    }\n}\n");
    out.push_str(
        "/// The wire type of one method argument.\n\
         #[derive(Debug, Clone, Copy, PartialEq, Eq)]\n\
         pub enum ArgType {\n\
         /// `octet`.\nOctet,\n/// `short`.\nShort,\n/// `long`.\nLong,\n/// `longlong`.\nLongLong,\n\
         /// `bit`.\nBit,\n/// `shortstr`.\nShortStr,\n/// `longstr`.\nLongStr,\n/// `timestamp`.\nTimestamp,\n/// `table`.\nTable,\n}\n\
         /// One argument of a method, as the spec lists it.\n\
         #[derive(Debug, Clone, Copy, PartialEq, Eq)]\n\
         pub struct Arg {\n/// The spec's field name.\npub name: &'static str,\n/// Its wire type.\npub ty: ArgType,\n\
         /// Reserved fields are sent as zero and not exposed.\npub reserved: bool,\n}\n\
         /// A method's ids, name and argument list.\n\
         #[derive(Debug, Clone, Copy, PartialEq, Eq)]\n\
         pub struct MethodLayout {\n/// Class id.\npub class_id: u16,\n/// Method id.\npub method_id: u16,\n\
         /// AMQP name.\npub name: &'static str,\n/// Arguments in wire order.\npub args: &'static [Arg],\n}\n\
         /// The layout of every method, for tests and tools that need to walk all of them.\n\
         pub const METHOD_LAYOUTS: &[MethodLayout] = &[\n",
    );
    for (c, m, _) in &all {
        let args: Vec<String> = m
            .fields
            .iter()
            .map(|f| {
                let ty = match f.ty.as_str() {
                    "octet" => "Octet",
                    "short" => "Short",
                    "long" => "Long",
                    "longlong" => "LongLong",
                    "bit" => "Bit",
                    "shortstr" => "ShortStr",
                    "longstr" => "LongStr",
                    "timestamp" => "Timestamp",
                    _ => "Table",
                };
                format!(
                    "Arg {{ name: \"{}\", ty: ArgType::{ty}, reserved: {} }}",
                    f.name, f.reserved
                )
            })
            .collect();
        writeln!(
            out,
            "    MethodLayout {{ class_id: {}, method_id: {}, name: \"{}.{}\", args: &[{}] }},",
            c.index,
            m.index,
            c.name,
            m.name,
            args.join(", ")
        )
        .ok();
    }
    out.push_str("];\n");
    out.push_str("/// The AMQP name of a class/method id pair, if it is known.\npub fn method_name(class_id: u16, method_id: u16) -> Option<&'static str> {\n    match (class_id, method_id) {\n");
    for (c, m, _) in &all {
        writeln!(
            out,
            "        ({}, {}) => Some(\"{}.{}\"),",
            c.index, m.index, c.name, m.name
        )
        .ok();
    }
    out.push_str("        _ => None,\n    }\n}\n");
    out.push_str(
        "fn decode_args<T>(args: &Bytes, name: &'static str, class_id: u16, method_id: u16, f: fn(&mut Reader<'_>) -> Result<T, FieldError>) -> Result<T, CodecError> {\n\
         let mut r = Reader::new(args);\n\
         f(&mut r).and_then(|v| r.finish().map(|()| v)).map_err(|reason| CodecError::MalformedMethod { name, class_id, method_id, reason })\n}\n",
    );
    Ok(out)
}

fn rustfmt(src: &str) -> Result<String, String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2024", "--emit", "stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run rustfmt: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("rustfmt has no stdin")?
        .write_all(src.as_bytes())
        .map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "rustfmt failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| e.to_string())
}

/// Generates the module text from the spec files under `root`.
pub fn generate(root: &Path) -> Result<String, String> {
    let read = |p: &str| std::fs::read_to_string(root.join(p)).map_err(|e| format!("{p}: {e}"));
    let mut spec = Spec::default();
    let mut domains = HashMap::new();
    parse_into(&mut spec, &read(SPEC)?, &mut domains)?;
    parse_into(&mut spec, &read(OVERLAY)?, &mut domains)?;
    rustfmt(&generate_from(&spec)?)
}

/// The path of the generated module under `root`.
pub fn output_path(root: &Path) -> PathBuf {
    root.join(OUTPUT)
}

/// Regenerates the module, or with `check` only compares it with the committed one.
pub fn run(root: &Path, check: bool) -> Result<String, String> {
    let fresh = generate(root)?;
    let path = output_path(root);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if check {
        return if current == fresh {
            Ok(format!("{OUTPUT} is up to date"))
        } else {
            Err(format!("{OUTPUT} is stale: run `cargo xtask codegen`"))
        };
    }
    if current == fresh {
        return Ok(format!("{OUTPUT} unchanged"));
    }
    std::fs::write(&path, fresh).map_err(|e| format!("{OUTPUT}: {e}"))?;
    Ok(format!("wrote {OUTPUT}"))
}
