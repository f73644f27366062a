package config

import (
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Key is one key of the config file as the YAML decoder sees it.
type Key struct {
	// Path is dotted, with [] for a list item: "redis.tls.ca_file",
	// "marketplaces[].scan.schedule".
	Path string
	// Leaf: a value (string, number, list of values, mapping of values, a
	// duration), not a section of further keys.
	Leaf bool
}

// Keys lists every key the config file accepts, sections before their
// keys, in declaration order. It is read from the Go types and their yaml
// tags, so it cannot drift from what decoding accepts; the docs are tested
// against it.
func Keys() []Key {
	var out []Key
	walkKeys(reflect.TypeFor[Config](), "", func(path string, _ reflect.Type, leaf bool) {
		out = append(out, Key{Path: path, Leaf: leaf})
	})
	return out
}

// fieldNames returns the keys of the section whose Go type yaml.v3 names
// typeName (as in "field hots not found in type config.Redis"), for "did
// you mean"; nil if no section has that type.
func fieldNames(typeName string) []string {
	section := reflect.TypeFor[Config]()
	found := section.String() == typeName
	walkKeys(section, "", func(_ string, t reflect.Type, leaf bool) {
		if !found && !leaf && t.String() == typeName {
			section, found = t, true
		}
	})
	if !found {
		return nil
	}
	var out []string
	var collect func(t reflect.Type)
	collect = func(t reflect.Type) {
		for _, f := range yamlFields(t) {
			if f.inline {
				collect(f.typ)
			} else {
				out = append(out, f.name)
			}
		}
	}
	collect(section)
	return out
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// walkKeys calls visit for each key under struct type t (path the key of
// t itself, "" at the top), with the type of its value after pointers, and
// for a list of sections the type of an item.
func walkKeys(t reflect.Type, path string, visit func(path string, t reflect.Type, leaf bool)) {
	for _, f := range yamlFields(t) {
		if f.inline {
			walkKeys(f.typ, path, visit)
			continue
		}
		p := f.name
		if path != "" {
			p = path + "." + f.name
		}
		ft := f.typ
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		// A list of sections is walked as its item: marketplaces[].id.
		if ft.Kind() == reflect.Slice && isSection(ft.Elem()) {
			visit(p, ft.Elem(), false)
			walkKeys(ft.Elem(), p+"[]", visit)
			continue
		}
		if isSection(ft) {
			visit(p, ft, false)
			walkKeys(ft, p, visit)
			continue
		}
		visit(p, ft, true)
	}
}

// isSection: a struct the decoder fills key by key, not a value with its
// own YAML form (durations).
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(unmarshalerType) && !t.Implements(unmarshalerType)
}

type yamlField struct {
	name   string
	typ    reflect.Type
	inline bool
}

// yamlFields are t's fields as yaml.v3 decodes them: the tag's name, else
// the lowercased field name; "-" and unexported fields are not keys.
func yamlFields(t reflect.Type) []yamlField {
	var out []yamlField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		inline := false
		for _, o := range strings.Split(opts, ",") {
			inline = inline || o == "inline"
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, yamlField{name: name, typ: f.Type, inline: inline})
	}
	return out
}
