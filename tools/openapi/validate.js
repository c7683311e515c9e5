// Validates an OpenAPI 3.1 document (JSON); exits 0 and says so when it is
// valid, exits 1 and prints every error found otherwise.
//
//     node tools/openapi/validate.js ngx_dr_module/openapi.json
//
// Two passes, because the official OpenAPI 3.1 JSON Schema alone accepts
// any object as a Schema Object (it leaves schemas to the JSON Schema
// dialect), so "type": "intger" in a response would pass it:
//
//  1. the document against the official OpenAPI 3.1 schema, and every
//     "$ref" resolved (@seriousme/openapi-schema-validator);
//  2. every Schema Object (components.schemas and each "schema" of a
//     parameter, header or media type) against the JSON Schema 2020-12
//     meta-schema, then compiled by Ajv in strict mode: unknown keywords
//     and formats, "required" naming a property that is not defined,
//     types that do not fit their keywords are errors;
//
// plus the checks no schema can express: unique operationIds, path
// templates and path parameters that match, defaults and examples valid
// against their schema.

import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";

const addFormats = addFormatsModule.default || addFormatsModule;

const BASE = "urn:domain-runner:openapi";
const METHODS = ["get", "put", "post", "delete", "options", "head",
                 "patch", "trace"];

const errors = [];

function fail(where, message) {
    errors.push(`${where}: ${message}`);
}

function pointer(parts) {
    return "#/" + parts.map((p) => String(p).replace(/~/g, "~0")
                                           .replace(/\//g, "~1")).join("/");
}

function isObject(v) {
    return v !== null && typeof v === "object" && !Array.isArray(v);
}

function ajvErrors(list) {
    return (list || []).map((e) => `${e.instancePath || "(root)"} ${e.message}`
        + (e.params && Object.keys(e.params).length
           ? " " + JSON.stringify(e.params) : "")).join("; ");
}


const file = process.argv[2];
if (!file || process.argv.length > 3) {
    console.error("usage: node validate.js openapi.json");
    process.exit(2);
}

let doc;
try {
    doc = JSON.parse(readFileSync(file, "utf-8"));
} catch (e) {
    console.error(`${file}: not JSON: ${e.message}`);
    process.exit(1);
}

if (!isObject(doc) || typeof doc.openapi !== "string"
    || !/^3\.1\.\d+$/.test(doc.openapi))
{
    console.error(`${file}: not an OpenAPI 3.1 document ("openapi": "3.1.x")`);
    process.exit(1);
}


// 1. the OpenAPI 3.1 schema and the references

const oas = await new Validator().validate(structuredClone(doc));
if (!oas.valid) {
    const list = Array.isArray(oas.errors) ? oas.errors : [oas.errors];
    for (const e of list) {
        if (isObject(e)) {
            fail("#" + (e.instancePath || ""),
                 `${e.message} ${JSON.stringify(e.params || {})}`);
        } else {
            fail("#", String(e));
        }
    }
}


// 2. every Schema Object

const ajv = new Ajv2020({
    strict: true,
    strictTypes: true,
    strictTuples: true,
    strictRequired: true,
    allowUnionTypes: true,
    allErrors: true,
    validateFormats: true,
});
addFormats(ajv);
// the OpenAPI data type formats and the OpenAPI vocabulary
for (const f of ["int32", "int64", "float", "double", "password"]) {
    ajv.addFormat(f, true);
}
ajv.addVocabulary(["discriminator", "xml", "externalDocs", "example"]);

const schemas = [];    // [where, schema]

function collect(node, path) {
    if (Array.isArray(node)) {
        node.forEach((v, i) => collect(v, path.concat(i)));
        return;
    }
    if (!isObject(node)) {
        return;
    }
    for (const [k, v] of Object.entries(node)) {
        const p = path.concat(k);
        if (k === "schema" && (isObject(v) || typeof v === "boolean")) {
            schemas.push([pointer(p), v]);
        } else if (k === "schemas" && path.length === 1
                   && path[0] === "components" && isObject(v))
        {
            for (const [name, s] of Object.entries(v)) {
                schemas.push([pointer(p.concat(name)), s]);
            }
        } else if (k !== "examples" && k !== "example" && k !== "default") {
            collect(v, p);
        }
    }
}

collect(doc, []);

// references between schemas point into components.schemas, which are
// registered under BASE so that each schema compiles on its own
function rewrite(node, where) {
    if (Array.isArray(node)) {
        return node.map((v) => rewrite(v, where));
    }
    if (!isObject(node)) {
        return node;
    }
    const out = {};
    for (const [k, v] of Object.entries(node)) {
        if (k === "$ref" && typeof v === "string") {
            const m = /^#\/components\/schemas\/([^/]+)$/.exec(v);
            if (m) {
                out[k] = `${BASE}#/$defs/${m[1]}`;
            } else {
                fail(where, `unsupported schema $ref "${v}" (only `
                            + "#/components/schemas/NAME)");
                out[k] = v;
            }
        } else if (k === "enum" || k === "const" || k === "default"
                   || k === "examples" || k === "example")
        {
            out[k] = v;    // data, not schemas
        } else {
            out[k] = rewrite(v, where);
        }
    }
    return out;
}

for (const [where, schema] of schemas) {
    if (!ajv.validateSchema(schema)) {
        fail(where, "not a JSON Schema 2020-12 schema: "
                    + ajvErrors(ajv.errors));
    }
}

const defs = {};
for (const [name, s] of Object.entries(doc.components?.schemas || {})) {
    defs[name] = rewrite(s, pointer(["components", "schemas", name]));
}

const compiled = new Map();

if (errors.length === 0) {
    try {
        ajv.addSchema({ $id: BASE, $defs: defs });
    } catch (e) {
        fail(pointer(["components", "schemas"]), e.message);
    }
}

if (errors.length === 0) {
    for (const [where, schema] of schemas) {
        try {
            compiled.set(where, ajv.compile(rewrite(schema, where)));
        } catch (e) {
            fail(where, e.message);
        }
    }
}


// 3. what no schema says

const opIds = new Map();

for (const [tpl, item] of Object.entries(doc.paths || {})) {
    const names = [...tpl.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);

    for (const method of METHODS) {
        const op = item[method];
        if (!isObject(op)) {
            continue;
        }
        const where = pointer(["paths", tpl, method]);

        if (op.operationId) {
            if (opIds.has(op.operationId)) {
                fail(where, `operationId ${op.operationId} is also used by `
                            + opIds.get(op.operationId));
            }
            opIds.set(op.operationId, where);
        }

        const params = [...(item.parameters || []), ...(op.parameters || [])]
            .map((p) => resolve(p));
        const inPath = params.filter((p) => p && p.in === "path")
                             .map((p) => p.name);
        for (const n of names) {
            if (!inPath.includes(n)) {
                fail(where, `path parameter {${n}} is not defined`);
            }
        }
        for (const n of inPath) {
            if (!names.includes(n)) {
                fail(where, `parameter ${n} is "in": "path" but not in `
                            + "the path");
            }
        }
        const seen = new Set();
        for (const p of params) {
            if (!p) {
                continue;
            }
            const key = `${p.in}:${p.name}`;
            if (seen.has(key)) {
                fail(where, `parameter ${p.name} in ${p.in} is defined twice`);
            }
            seen.add(key);
        }
    }
}

function resolve(node) {
    let seen = 0;
    while (isObject(node) && typeof node.$ref === "string" && seen++ < 16) {
        const m = /^#\/(.*)$/.exec(node.$ref);
        if (!m) {
            return undefined;
        }
        node = m[1].split("/").reduce(
            (o, k) => (o == null ? o
                       : o[k.replace(/~1/g, "/").replace(/~0/g, "~")]), doc);
    }
    return node;
}

// defaults and examples must be valid values of their schema
for (const [where, schema] of schemas) {
    const validate = compiled.get(where);
    if (!validate) {
        continue;
    }
    walkSchema(schema, where, (s, w) => {
        if (s === schema) {
            check(validate, s, w);
        } else if ("default" in s || "examples" in s) {
            try {
                check(ajv.compile(rewrite(s, w)), s, w);
            } catch (e) {
                fail(w, e.message);
            }
        }
    });
}

function check(validate, s, w) {
    if ("default" in s && !validate(s.default)) {
        fail(w + "/default", "not valid against its schema: "
                             + ajvErrors(validate.errors));
    }
    (Array.isArray(s.examples) ? s.examples : []).forEach((ex, i) => {
        if (!validate(ex)) {
            fail(`${w}/examples/${i}`, "not valid against its schema: "
                                        + ajvErrors(validate.errors));
        }
    });
}

function walkSchema(s, w, fn) {
    if (!isObject(s)) {
        return;
    }
    fn(s, w);
    for (const k of ["properties", "patternProperties", "$defs",
                     "dependentSchemas"]) {
        if (isObject(s[k])) {
            for (const [n, sub] of Object.entries(s[k])) {
                walkSchema(sub, `${w}/${k}/${n}`, fn);
            }
        }
    }
    for (const k of ["items", "additionalProperties", "not", "if", "then",
                     "else", "contains", "propertyNames",
                     "unevaluatedItems", "unevaluatedProperties"]) {
        walkSchema(s[k], `${w}/${k}`, fn);
    }
    for (const k of ["allOf", "anyOf", "oneOf", "prefixItems"]) {
        (Array.isArray(s[k]) ? s[k] : []).forEach(
            (sub, i) => walkSchema(sub, `${w}/${k}/${i}`, fn));
    }
}

// a parameter's example against the parameter's schema
for (const [where, schema] of schemas) {
    // where ends with /schema for parameters and headers
    const owner = resolve({ $ref: where.replace(/\/schema$/, "") });
    const validate = compiled.get(where);
    if (validate && isObject(owner) && "example" in owner
        && where.endsWith("/schema") && !validate(owner.example))
    {
        fail(where.replace(/\/schema$/, "/example"),
             "not valid against its schema: " + ajvErrors(validate.errors));
    }
}


if (errors.length) {
    console.error(`${file}: INVALID OpenAPI 3.1 document, `
                  + `${errors.length} error(s):`);
    for (const e of errors) {
        console.error("  " + e);
    }
    process.exit(1);
}

const ops = [...opIds.keys()].length;
console.log(`${file}: valid OpenAPI ${doc.openapi} `
            + `(${Object.keys(doc.paths || {}).length} paths, ${ops} `
            + `operations, ${schemas.length} schemas checked)`);
