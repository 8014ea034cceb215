package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// marshalJSON is `-o json`: the API's messages with protojson's field
// names, every field present (zero values too), but shaped for scripts
// rather than for the wire. protojson writes 64-bit integers as strings
// and enums as their proto names (HOST_ROLE_EDGE); here numbers are JSON
// numbers and an enum is the word the tables print (edge, running,
// blackhole). Timestamps stay RFC 3339 strings. docs/operations.md
// promises this shape.
func marshalJSON(m proto.Message) ([]byte, error) {
	var b bytes.Buffer
	if err := writeMessage(&b, m.ProtoReflect()); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func writeMessage(b *bytes.Buffer, m protoreflect.Message) error {
	if strings.HasPrefix(string(m.Descriptor().FullName()), "google.protobuf.") {
		// Well-known types (Timestamp) have their own JSON form.
		j, err := protojson.Marshal(m.Interface())
		if err != nil {
			return err
		}
		b.Write(j)
		return nil
	}
	b.WriteByte('{')
	fields := m.Descriptor().Fields()
	first := true
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.ContainingOneof() != nil && !m.Has(fd) {
			continue // only the member of a oneof that is set
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeString(b, fd.JSONName())
		b.WriteByte(':')
		if err := writeField(b, fd, m); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

func writeField(b *bytes.Buffer, fd protoreflect.FieldDescriptor, m protoreflect.Message) error {
	v := m.Get(fd)
	switch {
	case fd.IsList():
		l := v.List()
		b.WriteByte('[')
		for i := range l.Len() {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeValue(b, fd, l.Get(i)); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	case fd.IsMap():
		b.WriteByte('{')
		first := true
		var err error
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			if !first {
				b.WriteByte(',')
			}
			first = false
			writeString(b, k.String())
			b.WriteByte(':')
			err = writeValue(b, fd.MapValue(), mv)
			return err == nil
		})
		b.WriteByte('}')
		return err
	case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
		if !m.Has(fd) {
			b.WriteString("null")
			return nil
		}
	}
	return writeValue(b, fd, v)
}

func writeValue(b *bytes.Buffer, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		b.WriteString(strconv.FormatBool(v.Bool()))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		b.WriteString(strconv.FormatUint(v.Uint(), 10))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			writeString(b, strconv.FormatFloat(f, 'g', -1, 64)) // JSON has no NaN
		} else {
			b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
		}
	case protoreflect.StringKind:
		writeString(b, v.String())
	case protoreflect.BytesKind:
		writeString(b, base64.StdEncoding.EncodeToString(v.Bytes()))
	case protoreflect.EnumKind:
		writeString(b, enumWord(fd.Enum(), v.Enum()))
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return writeMessage(b, v.Message())
	}
	return nil
}

func writeString(b *bytes.Buffer, s string) {
	j, _ := json.Marshal(s) // a string always marshals
	b.Write(j)
}

// enumWord is the word tables print for an enum value: its name without
// the prefix its type's values share, lower case, dashes for underscores
// (INSTANCE_STATE_RUNNING → running, ROUTE_STATE_BLACKHOLE → blackhole).
func enumWord(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) string {
	vd := ed.Values().ByNumber(n)
	if vd == nil {
		return strconv.Itoa(int(n)) // a value newer than this client
	}
	name := strings.TrimPrefix(string(vd.Name()), enumPrefix(ed))
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// enumPrefix is the prefix that by proto style every value of ed carries:
// the type's name in upper snake case (HostRole → HOST_ROLE_).
func enumPrefix(ed protoreflect.EnumDescriptor) string {
	var b strings.Builder
	for i, r := range string(ed.Name()) {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	b.WriteByte('_')
	return b.String()
}
