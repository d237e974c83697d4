/* sse_core._speedups: optional C accelerator for sse_core.Parser (floor 1).
 *
 * It holds two functions with exactly the behaviour of two pure-Python methods in
 * sse_core/_parser.py, which is the specification of this file:
 *
 * - process(parser, complete, out) is Parser._process: the same items are appended to `out`
 *   in the same order, the same state is stored back into the parser's slots (_data,
 *   _data_size, _event_type, _own_id, _id_buffer, _last_event_id), the same LimitExceeded
 *   goes through the parser's _fail method (with the same items already in `out`), and the
 *   same two fast paths for blocks of only "data: " lines are taken (they differ from the
 *   literal path only in the value a LimitExceeded reports).
 * - feed(parser, data) is Parser.feed, step by step (decoder buffer, BOM, CR at the end of the
 *   previous chunk, the unfinished-line tail, max_line_length), with process() for the lines.
 *   Where the Python code normalises CR and CRLF to LF with a copy of the text, the C line
 *   scan recognises all three line endings in place; the lines it sees are the same.
 *
 * tests/test_speedups.py runs the Python and C versions on the same streams and compares
 * items, errors and the parser's whole state after every call. The comments cite WHATWG HTML
 * 9.2.6 "Interpreting an event stream" as the Python does.
 *
 * Speed comes from reading the text in place (no str.split, no per-line str objects except
 * the field values that items keep); from remembering data lines as spans of the text, copied
 * once into the event's data; from building Event and Comment records with the class's
 * tp_alloc and filling their slots at the slot offsets -- what _events._make_event does
 * through the slots' descriptors, without validation, since the parser's values always
 * satisfy it; and from reading and writing the parser's own slots the same way.
 *
 * It also holds the serializer functions of sse_core/_serializer.py (serialize,
 * serialize_event) and Event.__init__ of sse_core/_events.py (event_init), each with the
 * Python function as specification and fallback (see their sections), and it makes calling
 * the Event class skip type.__call__ (event_vectorcall).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <wchar.h>

#if PY_VERSION_HEX >= 0x030C0000
#define MEMBER_OBJECT_EX Py_T_OBJECT_EX
#define MEMBER_READONLY Py_READONLY
#else
#include "structmember.h"
#define MEMBER_OBJECT_EX T_OBJECT_EX
#define MEMBER_READONLY READONLY
#endif

/* --- module state (looked up once; the module is single-phase) ------------------------- */

static PyTypeObject *event_cls;   /* sse_core._events.Event */
static PyTypeObject *comment_cls; /* sse_core._events.Comment */
static Py_ssize_t off_data, off_event, off_id, off_leid, off_text;
static PyObject *make_retry;      /* sse_core._parser._make_retry, fetched on first use */
static PyObject *limit_exceeded;  /* sse_core._errors.LimitExceeded, fetched on first use */

static PyObject *s_message, *s_empty, *s_max_event_size, *s_fail;
static PyObject *s_data, *s_data_size, *s_event_type, *s_own_id, *s_id_buffer;
static PyObject *s_last_event_id, *s_max_event_size_attr;

/* 10**18 - 1: sse_core._parser.MAX_RETRY_MILLISECONDS. */
#define MAX_RETRY 999999999999999999LL

/* The offset of a writable object slot, from the class's member descriptor. */
static int
slot_offset(PyTypeObject *cls, const char *name, Py_ssize_t *offset)
{
    PyObject *dict = PyObject_GetAttrString((PyObject *)cls, "__dict__");
    if (dict == NULL) {
        return -1;
    }
    PyObject *descr = PyMapping_GetItemString(dict, name);
    Py_DECREF(dict);
    if (descr == NULL) {
        return -1;
    }
    int ok = PyObject_TypeCheck(descr, &PyMemberDescr_Type);
    if (ok) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        ok = member->type == MEMBER_OBJECT_EX && !(member->flags & MEMBER_READONLY)
             && member->offset > 0
             && member->offset + (Py_ssize_t)sizeof(PyObject *) <= cls->tp_basicsize;
        *offset = member->offset;
    }
    Py_DECREF(descr);
    if (!ok) {
        PyErr_Format(PyExc_ImportError, "%s.%s is not an object slot", cls->tp_name, name);
        return -1;
    }
    return 0;
}

static PyTypeObject *
get_class(PyObject *module, const char *name)
{
    PyObject *cls = PyObject_GetAttrString(module, name);
    if (cls != NULL && !PyType_Check(cls)) {
        PyErr_Format(PyExc_ImportError, "sse_core._events.%s is not a class", name);
        Py_CLEAR(cls);
    }
    return (PyTypeObject *)cls;
}

/* An attribute of an sse_core module, cached in *slot on first use. */
static PyObject *
lazy_attr(PyObject **slot, const char *module_name, const char *name)
{
    if (*slot == NULL) {
        PyObject *module = PyImport_ImportModule(module_name);
        if (module == NULL) {
            return NULL;
        }
        *slot = PyObject_GetAttrString(module, name);
        Py_DECREF(module);
    }
    return *slot;
}

/* --- items --------------------------------------------------------------------------------- */

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* Event(data, event, id, last_event_id) without validation; steals `data`. */
static PyObject *
new_event(PyObject *data, PyObject *event, PyObject *id, PyObject *last_event_id)
{
    if (data == NULL) {
        return NULL;
    }
    PyObject *obj = event_cls->tp_alloc(event_cls, 0);
    if (obj == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    SLOT(obj, off_data) = data;
    Py_INCREF(event);
    SLOT(obj, off_event) = event;
    Py_INCREF(id);
    SLOT(obj, off_id) = id;
    Py_INCREF(last_event_id);
    SLOT(obj, off_leid) = last_event_id;
    return obj;
}

/* Comment(text) without validation; steals `text`. */
static PyObject *
new_comment(PyObject *text)
{
    if (text == NULL) {
        return NULL;
    }
    PyObject *obj = comment_cls->tp_alloc(comment_cls, 0);
    if (obj == NULL) {
        Py_DECREF(text);
        return NULL;
    }
    SLOT(obj, off_text) = text;
    return obj;
}

/* out.append(item); steals `item`. */
static int
append_new(PyObject *out, PyObject *item)
{
    if (item == NULL) {
        return -1;
    }
    int rc = PyList_Append(out, item);
    Py_DECREF(item);
    return rc;
}

/* --- reading the text ---------------------------------------------------------------------- */

typedef struct {
    int kind;
    const void *buf;
    Py_ssize_t n;
    int is_ascii;
    PyObject *str;
    int has_cr; /* lines may end in CR or CRLF too, not only LF (see find_eol) */
    /* With has_cr, find_eol's memory: the first LF at or after lf_from is at lf_at (n when
     * there is none), and likewise for CR. */
    Py_ssize_t lf_from, lf_at, cr_from, cr_at;
} Text;

#define TEXT_INIT(str, len, cr)                                                \
    {PyUnicode_KIND(str), PyUnicode_DATA(str), (len), PyUnicode_IS_ASCII(str), (str), (cr), \
     0, -1, 0, -1}

#define CHAR(t, i) PyUnicode_READ((t)->kind, (t)->buf, (i))

/* Index of the first `ch` in [start, end), or -1. Two- and four-byte strings are searched
 * in blocks of 16 characters with a loop free of early exits, which compilers vectorise
 * (four-byte ones with the C library's wmemchr where wchar_t is four bytes). */
#define FIND_WIDE(TYPE)                                                        \
    do {                                                                       \
        const TYPE *p = (const TYPE *)t->buf;                                  \
        const TYPE c = (TYPE)ch;                                               \
        Py_ssize_t i = start;                                                  \
        for (; i + 16 <= end; i += 16) {                                       \
            int hit = 0;                                                       \
            for (int j = 0; j < 16; j++) {                                     \
                hit |= p[i + j] == c;                                          \
            }                                                                  \
            if (hit) {                                                         \
                break;                                                         \
            }                                                                  \
        }                                                                      \
        for (; i < end; i++) {                                                 \
            if (p[i] == c) {                                                   \
                return i;                                                      \
            }                                                                  \
        }                                                                      \
        return -1;                                                             \
    } while (0)

#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#include <emmintrin.h>
/* Index of the first `c` in p[start:end], or -1: eight characters per SSE2 comparison. */
static Py_ssize_t
find_ucs2(const Py_UCS2 *p, Py_ssize_t start, Py_ssize_t end, Py_UCS2 c)
{
    const __m128i wanted = _mm_set1_epi16((short)c);
    Py_ssize_t i = start;
    for (; i + 8 <= end; i += 8) {
        __m128i block = _mm_loadu_si128((const __m128i *)(p + i));
        int mask = _mm_movemask_epi8(_mm_cmpeq_epi16(block, wanted));
        if (mask != 0) {
            return i + (__builtin_ctz((unsigned)mask) >> 1);
        }
    }
    for (; i < end; i++) {
        if (p[i] == c) {
            return i;
        }
    }
    return -1;
}
#define HAVE_FIND_UCS2 1
#endif

static Py_ssize_t
find_char(const Text *t, Py_ssize_t start, Py_ssize_t end, Py_UCS4 ch)
{
    switch (t->kind) {
    case PyUnicode_1BYTE_KIND: {
        const Py_UCS1 *p = (const Py_UCS1 *)t->buf;
        const Py_UCS1 *hit = memchr(p + start, (int)ch, (size_t)(end - start));
        return hit == NULL ? -1 : hit - p;
    }
    case PyUnicode_2BYTE_KIND:
#ifdef HAVE_FIND_UCS2
        return find_ucs2((const Py_UCS2 *)t->buf, start, end, (Py_UCS2)ch);
#else
        FIND_WIDE(Py_UCS2);
#endif
    default: {
#if defined(__SIZEOF_WCHAR_T__) && __SIZEOF_WCHAR_T__ == 4
        const wchar_t *p = (const wchar_t *)t->buf;
        const wchar_t *hit = wmemchr(p + start, (wchar_t)ch, (size_t)(end - start));
        return hit == NULL ? -1 : hit - p;
#else
        FIND_WIDE(Py_UCS4);
#endif
    }
    }
}

/* Index of the first line ending in [start, t->n), or -1: LF, or also CR when the text has
 * CRs ("a CRLF pair, a single LF, and a single CR ... being the ways in which a line can
 * end"). A CRLF pair is found at its CR; after_eol steps over the whole pair. With CRs, the
 * next CR and the next LF are each found with one search (memchr for one-byte text) and
 * remembered, so a text of CRLF lines is searched about twice, not once per line per
 * character class. */
static Py_ssize_t
find_eol(Text *t, Py_ssize_t start)
{
    Py_ssize_t n = t->n;
    if (!t->has_cr) {
        return find_char(t, start, n, '\n');
    }
    if (start < t->lf_from || start > t->lf_at) {
        Py_ssize_t at = find_char(t, start, n, '\n');
        t->lf_from = start;
        t->lf_at = at < 0 ? n : at;
    }
    if (start < t->cr_from || start > t->cr_at) {
        Py_ssize_t at = find_char(t, start, n, '\r');
        t->cr_from = start;
        t->cr_at = at < 0 ? n : at;
    }
    Py_ssize_t eol = t->lf_at < t->cr_at ? t->lf_at : t->cr_at;
    return eol < n ? eol : -1;
}

/* Index of the character after the line ending at `eol` (the text's end bounds a CRLF pair:
 * a CR that ends the text is a whole line ending). */
static inline Py_ssize_t
after_eol(const Text *t, Py_ssize_t eol)
{
    if (t->has_cr && eol + 1 < t->n && CHAR(t, eol) == '\r' && CHAR(t, eol + 1) == '\n') {
        return eol + 2;
    }
    return eol + 1;
}

/* Whether the `len` characters at `start` are the ASCII string `lit`. */
static int
equals_ascii(const Text *t, Py_ssize_t start, const char *lit, Py_ssize_t len)
{
    if (t->kind == PyUnicode_1BYTE_KIND) {
        return memcmp((const Py_UCS1 *)t->buf + start, lit, (size_t)len) == 0;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        if (CHAR(t, start + i) != (Py_UCS4)(unsigned char)lit[i]) {
            return 0;
        }
    }
    return 1;
}

/* Whether the line [start, end) starts with "data: ". */
static int
is_data_space(const Text *t, Py_ssize_t start, Py_ssize_t end)
{
    return end - start >= 6 && equals_ascii(t, start, "data: ", 6);
}

/* The largest code point in [start, end) (0 when empty). */
static Py_UCS4
max_char(const Text *t, Py_ssize_t start, Py_ssize_t end)
{
    if (t->is_ascii) {
        return 0x7F;
    }
    switch (t->kind) {
    case PyUnicode_1BYTE_KIND: {
        const Py_UCS1 *p = (const Py_UCS1 *)t->buf;
        Py_UCS1 bits = 0;
        for (Py_ssize_t i = start; i < end; i++) {
            bits |= p[i];
        }
        return bits & 0x80 ? 0xFF : 0x7F;
    }
    case PyUnicode_2BYTE_KIND: {
        const Py_UCS2 *p = (const Py_UCS2 *)t->buf;
        Py_UCS2 top = 0;
        for (Py_ssize_t i = start; i < end; i++) {
            top = p[i] > top ? p[i] : top;
        }
        return top;
    }
    default: {
        const Py_UCS4 *p = (const Py_UCS4 *)t->buf;
        Py_UCS4 top = 0;
        for (Py_ssize_t i = start; i < end; i++) {
            top = p[i] > top ? p[i] : top;
        }
        return top;
    }
    }
}

/* --- the data buffer ----------------------------------------------------------------------- */

/* Data lines of this call not yet dispatched, as spans of `complete`. */
typedef struct {
    Py_ssize_t start, end;
} Span;

typedef struct {
    Span *items;
    Py_ssize_t len, cap;
    Span local[64];
} Spans;

static int
spans_push(Spans *s, Py_ssize_t start, Py_ssize_t end)
{
    if (s->len == s->cap) {
        Py_ssize_t cap = s->cap * 2;
        Span *items;
        if (s->items == s->local) {
            items = PyMem_Malloc((size_t)cap * sizeof(Span));
            if (items != NULL) {
                memcpy(items, s->local, sizeof(s->local));
            }
        }
        else {
            items = PyMem_Realloc(s->items, (size_t)cap * sizeof(Span));
        }
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        s->items = items;
        s->cap = cap;
    }
    s->items[s->len].start = start;
    s->items[s->len].end = end;
    s->len++;
    return 0;
}

/* Copy `len` characters between buffers of any kinds (the target's kind can hold them). */
#define CONVERT(TO, FROM)                                                      \
    do {                                                                       \
        TO *d = (TO *)to + at;                                                 \
        const FROM *f = (const FROM *)from + start;                            \
        for (Py_ssize_t j = 0; j < len; j++) {                                 \
            d[j] = (TO)f[j];                                                   \
        }                                                                      \
    } while (0)

static void
copy_chars(int to_kind, void *to, Py_ssize_t at, int from_kind, const void *from,
           Py_ssize_t start, Py_ssize_t len)
{
    if (to_kind == from_kind) {
        memcpy((char *)to + at * to_kind, (const char *)from + start * from_kind,
               (size_t)(len * to_kind));
    }
    else if (to_kind == PyUnicode_1BYTE_KIND && from_kind == PyUnicode_2BYTE_KIND) {
        CONVERT(Py_UCS1, Py_UCS2);
    }
    else if (to_kind == PyUnicode_1BYTE_KIND) {
        CONVERT(Py_UCS1, Py_UCS4);
    }
    else if (to_kind == PyUnicode_2BYTE_KIND && from_kind == PyUnicode_1BYTE_KIND) {
        CONVERT(Py_UCS2, Py_UCS1);
    }
    else if (to_kind == PyUnicode_2BYTE_KIND) {
        CONVERT(Py_UCS2, Py_UCS4);
    }
    else if (from_kind == PyUnicode_1BYTE_KIND) {
        CONVERT(Py_UCS4, Py_UCS1);
    }
    else {
        CONVERT(Py_UCS4, Py_UCS2);
    }
}

/* Dispatch steps 3-4: the data buffer's lines -- those of the list `prefix` (left by earlier
 * calls; may be NULL) then the spans -- joined by LF, as a new str. */
static PyObject *
join_data(const Text *t, PyObject *prefix, const Spans *s)
{
    Py_ssize_t n_prefix = prefix == NULL ? 0 : PyList_GET_SIZE(prefix);
    if (n_prefix == 0 && s->len == 1) {
        return PyUnicode_Substring(t->str, s->items[0].start, s->items[0].end);
    }
    /* The exact largest code point, so that the result is a canonical str. */
    Py_ssize_t total = n_prefix + s->len - 1;
    Py_UCS4 top = 0;
    for (Py_ssize_t i = 0; i < n_prefix; i++) {
        PyObject *line = PyList_GET_ITEM(prefix, i);
        if (!PyUnicode_Check(line)) {
            PyErr_SetString(PyExc_TypeError, "Parser._data must hold str");
            return NULL;
        }
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(line) < 0) {
            return NULL;
        }
#endif
        total += PyUnicode_GET_LENGTH(line);
        Py_UCS4 m = PyUnicode_MAX_CHAR_VALUE(line);
        top = m > top ? m : top;
    }
    for (Py_ssize_t i = 0; i < s->len; i++) {
        total += s->items[i].end - s->items[i].start;
        if (top < 0x10FFFF) {
            Py_UCS4 m = max_char(t, s->items[i].start, s->items[i].end);
            top = m > top ? m : top;
        }
    }
    PyObject *result = PyUnicode_New(total, top);
    if (result == NULL) {
        return NULL;
    }
    int kind = PyUnicode_KIND(result);
    void *buf = PyUnicode_DATA(result);
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < n_prefix; i++) {
        PyObject *line = PyList_GET_ITEM(prefix, i);
        Py_ssize_t len = PyUnicode_GET_LENGTH(line);
        if (i > 0) {
            PyUnicode_WRITE(kind, buf, at++, '\n');
        }
        copy_chars(kind, buf, at, PyUnicode_KIND(line), PyUnicode_DATA(line), 0, len);
        at += len;
    }
    for (Py_ssize_t i = 0; i < s->len; i++) {
        Py_ssize_t start = s->items[i].start, len = s->items[i].end - start;
        if (i > 0 || n_prefix > 0) {
            PyUnicode_WRITE(kind, buf, at++, '\n');
        }
        copy_chars(kind, buf, at, t->kind, t->buf, start, len);
        at += len;
    }
    assert(at == total);
    return result;
}

/* --- limits and retry ---------------------------------------------------------------------- */

/* parser._fail(LimitExceeded(limit, value, maximum, out)), limit being the config keyword
 * ("max_event_size" or "max_line_length"). _fail raises; if it returns anyway, so does this
 * (0), and the caller goes on as the Python code would. */
static int
fail_limit(PyObject *parser, PyObject *limit, Py_ssize_t value, PyObject *maximum,
           PyObject *out)
{
    if (lazy_attr(&limit_exceeded, "sse_core._errors", "LimitExceeded") == NULL) {
        return -1;
    }
    PyObject *number = PyLong_FromSsize_t(value);
    if (number == NULL) {
        return -1;
    }
    PyObject *error = PyObject_CallFunctionObjArgs(limit_exceeded, limit, number, maximum, out,
                                                   NULL);
    Py_DECREF(number);
    if (error == NULL) {
        return -1;
    }
    PyObject *result = PyObject_CallMethodObjArgs(parser, s_fail, error, NULL);
    Py_DECREF(error);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* "If the field name is "retry"": if the value is only ASCII digits (at least one), append a
 * Retry of that many milliseconds; more than 18 significant digits report
 * MAX_RETRY_MILLISECONDS, as in the Python code. */
static int
field_retry(const Text *t, Py_ssize_t start, Py_ssize_t end, PyObject *out)
{
    if (start == end) {
        return 0;
    }
    for (Py_ssize_t i = start; i < end; i++) {
        Py_UCS4 c = CHAR(t, i);
        if (c < '0' || c > '9') {
            return 0;
        }
    }
    while (start < end && CHAR(t, start) == '0') {
        start++;
    }
    long long value = MAX_RETRY;
    if (end - start <= 18) {
        value = 0;
        for (Py_ssize_t i = start; i < end; i++) {
            value = value * 10 + (long long)(CHAR(t, i) - '0');
        }
    }
    if (lazy_attr(&make_retry, "sse_core._parser", "_make_retry") == NULL) {
        return -1;
    }
    PyObject *number = PyLong_FromLongLong(value);
    if (number == NULL) {
        return -1;
    }
    PyObject *item = PyObject_CallOneArg(make_retry, number);
    Py_DECREF(number);
    return append_new(out, item);
}

/* A str from [start, end); when it equals *cache, the cached object is reused. */
static PyObject *
substring_cached(const Text *t, Py_ssize_t start, Py_ssize_t end, PyObject **cache)
{
    PyObject *old = *cache;
    Py_ssize_t len = end - start;
    if (old != NULL && PyUnicode_GET_LENGTH(old) == len) {
        int okind = PyUnicode_KIND(old);
        const void *obuf = PyUnicode_DATA(old);
        int same = 1;
        if (okind == t->kind) {
            same = memcmp(obuf, (const char *)t->buf + start * okind, (size_t)(len * okind)) == 0;
        }
        else {
            for (Py_ssize_t i = 0; i < len && same; i++) {
                same = PyUnicode_READ(okind, obuf, i) == CHAR(t, start + i);
            }
        }
        if (same) {
            Py_INCREF(old);
            return old;
        }
    }
    PyObject *value = PyUnicode_Substring(t->str, start, end);
    if (value != NULL) {
        Py_INCREF(value);
        Py_XSETREF(*cache, value);
    }
    return value;
}

/* --- the parser's slots ------------------------------------------------------------------- */

/* Parser is a slotted class: for an instance of exactly the class seen first, its attributes
 * are read and written at their slot offsets (as the slot descriptors do); any other object
 * goes through ordinary attribute access. */
/* The parser's slots by index (their names are in parser_slot_names, in this order). */
enum {
    P_DATA,
    P_DATA_SIZE,
    P_EVENT_TYPE,
    P_OWN_ID,
    P_ID_BUFFER,
    P_LAST_EVENT_ID,
    P_MAX_EVENT_SIZE_ATTR,
    P_STATE,
    P_DECODER,
    P_IS_AT_START,
    P_PENDING_LF,
    P_TAIL,
    P_TAIL_SIZE,
    P_MAX_LINE_LENGTH_ATTR,
    N_PARSER_SLOTS
};
static PyTypeObject *parser_cls;
static PyObject *parser_slot_names[N_PARSER_SLOTS];
static Py_ssize_t parser_slot_offsets[N_PARSER_SLOTS];

static void
learn_parser_slots(PyObject *parser)
{
    PyTypeObject *cls = Py_TYPE(parser);
    for (int i = 0; i < N_PARSER_SLOTS; i++) {
        const char *name = PyUnicode_AsUTF8(parser_slot_names[i]);
        if (name == NULL || slot_offset(cls, name, &parser_slot_offsets[i]) < 0) {
            PyErr_Clear(); /* not the class that defines the slots: try the next caller's */
            return;
        }
    }
    Py_INCREF(cls);
    parser_cls = cls;
}

/* The offset of slot `index` in `parser`, or 0 when it is not an instance of the class. */
static inline Py_ssize_t
parser_offset(PyObject *parser, int index)
{
    if (parser_cls == NULL) {
        learn_parser_slots(parser);
    }
    return Py_TYPE(parser) == parser_cls ? parser_slot_offsets[index] : 0;
}

/* The parser's attribute `index` (a P_* constant), a new reference. */
static PyObject *
get_attr(PyObject *parser, int index)
{
    Py_ssize_t offset = parser_offset(parser, index);
    if (offset > 0) {
        PyObject *value = SLOT(parser, offset);
        if (value != NULL) {
            Py_INCREF(value);
            return value;
        }
    }
    return PyObject_GetAttr(parser, parser_slot_names[index]);
}

/* Set the parser's attribute `index` (a P_* constant) to `value`. */
static int
set_attr(PyObject *parser, int index, PyObject *value)
{
    Py_ssize_t offset = parser_offset(parser, index);
    if (offset > 0) {
        Py_INCREF(value);
        Py_XSETREF(SLOT(parser, offset), value);
        return 0;
    }
    return PyObject_SetAttr(parser, parser_slot_names[index], value);
}

/* --- Parser._process ----------------------------------------------------------------------- */

static int
get_ssize(PyObject *obj, Py_ssize_t *value)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow > 0 || v > PY_SSIZE_T_MAX) {
        *value = PY_SSIZE_T_MAX; /* a limit no str can reach */
    }
    else if (overflow < 0 || v < PY_SSIZE_T_MIN) {
        *value = PY_SSIZE_T_MIN;
    }
    else {
        *value = (Py_ssize_t)v;
    }
    return 0;
}

/* Parser._process(complete[:n], out): 0, or -1 with an exception set. With `has_cr`, lines
 * may also end in CR or CRLF (feed passes text with CRs as it is, rather than a copy with
 * every line ending made LF); `complete[:n]` then ends with CR or LF. */
static int
process_lines(PyObject *parser, PyObject *complete, Py_ssize_t n, int has_cr, PyObject *out)
{
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(complete) < 0) {
        return -1;
    }
#endif
    Text text = TEXT_INIT(complete, n, has_cr);
    Text *t = &text;

    int result = -1;
    PyObject *data = NULL, *event_type = NULL, *own_id = NULL, *id_buffer = NULL;
    PyObject *committed = NULL, *max_obj = NULL, *type_cache = NULL, *new_list = NULL;
    Spans spans;
    spans.items = spans.local;
    spans.len = 0;
    spans.cap = (Py_ssize_t)(sizeof(spans.local) / sizeof(spans.local[0]));
    Py_ssize_t size, max_size;

    /* The spec's buffers, in locals for the call (see the Python docstring). */
    if ((data = get_attr(parser, P_DATA)) == NULL
        || (max_obj = get_attr(parser, P_MAX_EVENT_SIZE_ATTR)) == NULL
        || (event_type = get_attr(parser, P_EVENT_TYPE)) == NULL
        || (own_id = get_attr(parser, P_OWN_ID)) == NULL
        || (id_buffer = get_attr(parser, P_ID_BUFFER)) == NULL
        || (committed = get_attr(parser, P_LAST_EVENT_ID)) == NULL) {
        goto done;
    }
    {
        PyObject *size_obj = get_attr(parser, P_DATA_SIZE);
        if (size_obj == NULL) {
            goto done;
        }
        int rc = get_ssize(size_obj, &size);
        Py_DECREF(size_obj);
        if (rc < 0 || get_ssize(max_obj, &max_size) < 0) {
            goto done;
        }
    }
    if (!PyList_Check(data) || !PyUnicode_Check(event_type)) {
        PyErr_SetString(PyExc_TypeError, "Parser._data must be a list, _event_type a str");
        goto done;
    }
    /* The data buffer is `prefix` (lines from earlier calls, until the first dispatch of this
     * call) followed by `spans`; after a dispatch the Python code starts a new list. */
    int is_replaced = 0;
    PyObject *prefix = PyList_GET_SIZE(data) > 0 ? data : NULL;

    Py_ssize_t pos = 0;
    /* Whether the line at `pos` starts a block of complete.split("\n\n") in the Python code:
     * the first line does, and so does the line after each blank line that ends a block (a
     * blank line that is the first line of its block does not end it). */
    int at_block_start = 1;
    while (pos < n) {
        Py_ssize_t eol = find_eol(t, pos), next;
        if (eol < 0) {
            /* Only when `complete` breaks its contract (no final LF): like the Python code,
             * the last character is then dropped as if it were the LF. */
            eol = n - 1;
            next = n;
        }
        else {
            next = after_eol(t, eol);
        }
        Py_ssize_t len = eol - pos;
        int is_block_start = at_block_start;
        at_block_start = 0;
        if (is_block_start) {
            if (is_data_space(t, pos, eol) && prefix == NULL && spans.len == 0
                && PyUnicode_GET_LENGTH(event_type) == 0 && own_id == Py_None) {
                /* Fast paths, for a block that starts with nothing pending and holds only
                 * "data: " lines, then the blank line that ends it (so it is not the last
                 * block). The event's data is each line less its prefix, joined by LF. */
                Py_ssize_t p = pos, joined = -1, block_end = -1;
                for (;;) {
                    Py_ssize_t e = find_eol(t, p);
                    if (e < 0) {
                        break;
                    }
                    if (e == p) {
                        block_end = after_eol(t, e);
                        break;
                    }
                    if (!is_data_space(t, p, e)) {
                        break;
                    }
                    if (spans_push(&spans, p + 6, e) < 0) {
                        goto done;
                    }
                    joined += e - p - 6 + 1;
                    p = after_eol(t, e);
                }
                if (block_end >= 0) {
                    if (joined > max_size
                        && fail_limit(parser, s_max_event_size, joined, max_obj, out) < 0) {
                        goto done;
                    }
                    if (append_new(out, new_event(join_data(t, NULL, &spans), s_message,
                                                  Py_None, id_buffer)) < 0) {
                        goto done;
                    }
                    spans.len = 0;
                    pos = block_end;
                    at_block_start = 1;
                    continue;
                }
                spans.len = 0; /* not a fast block: the literal path from its first line */
            }
        }
        else if (len == 0) {
            at_block_start = 1;
        }

        /* The literal path: the spec's rules for each line, in order. */
        if (len == 0) {
            /* "If the line is empty (a blank line): dispatch the event." Step 1: the last
             * event ID string takes the buffer's value. Step 2: no data, no event. */
            Py_INCREF(id_buffer);
            Py_SETREF(committed, id_buffer);
            if (prefix != NULL || spans.len > 0) {
                /* Steps 3-6: data lines joined by LF (the final LF removed); the type is
                 * "message" unless the event type buffer is non-empty. */
                PyObject *type = PyUnicode_GET_LENGTH(event_type) ? event_type : s_message;
                if (append_new(out, new_event(join_data(t, prefix, &spans), type, own_id,
                                              id_buffer)) < 0) {
                    goto done;
                }
                prefix = NULL;
                is_replaced = 1;
                spans.len = 0;
                size = -1;
            }
            /* Step 7 (and step 2): empty the data and event type buffers. */
            Py_INCREF(s_empty);
            Py_SETREF(event_type, s_empty);
            Py_INCREF(Py_None);
            Py_SETREF(own_id, Py_None);
        }
        else if (CHAR(t, pos) == ':') {
            /* "If the line starts with a U+003A COLON character: ignore the line." We report
             * it: servers send comments as heartbeats. */
            if (append_new(out, new_comment(PyUnicode_Substring(complete, pos + 1, eol))) < 0) {
                goto done;
            }
        }
        else {
            /* "If the line contains a colon": the field is what comes before the first colon,
             * the value what comes after, less one leading space. "Otherwise": the whole line
             * is the field name and the value is empty. */
            Py_ssize_t colon = find_char(t, pos, eol, ':');
            Py_ssize_t field_end = eol, value = eol;
            if (colon >= 0) {
                field_end = colon;
                value = colon + 1;
                if (value < eol && CHAR(t, value) == ' ') {
                    value++;
                }
            }
            /* "Process the field": names are compared literally. */
            Py_ssize_t field_len = field_end - pos;
            if (field_len == 4 && equals_ascii(t, pos, "data", 4)) {
                /* Append the value, then an LF, to the data buffer. */
                size += eol - value + 1;
                if (size > max_size
                    && fail_limit(parser, s_max_event_size, size, max_obj, out) < 0) {
                    goto done;
                }
                if (spans_push(&spans, value, eol) < 0) {
                    goto done;
                }
            }
            else if (field_len == 5 && equals_ascii(t, pos, "event", 5)) {
                PyObject *v = substring_cached(t, value, eol, &type_cache);
                if (v == NULL) {
                    goto done;
                }
                Py_SETREF(event_type, v);
            }
            else if (field_len == 2 && equals_ascii(t, pos, "id", 2)) {
                /* Ignore an id that contains U+0000 NULL. */
                if (find_char(t, value, eol, 0) < 0) {
                    PyObject *v = PyUnicode_Substring(complete, value, eol);
                    if (v == NULL) {
                        goto done;
                    }
                    Py_INCREF(v);
                    Py_SETREF(id_buffer, v);
                    Py_SETREF(own_id, v);
                }
            }
            else if (field_len == 5 && equals_ascii(t, pos, "retry", 5)) {
                if (field_retry(t, value, eol, out) < 0) {
                    goto done;
                }
            }
            /* "Otherwise: the field is ignored." */
        }
        pos = next;
    }

    /* Store the buffers back. Undispatched data lines join the list as separate str, as in
     * the Python code (the original list object while nothing was dispatched). */
    PyObject *target = data;
    if (is_replaced) {
        target = new_list = PyList_New(0);
        if (new_list == NULL) {
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < spans.len; i++) {
        if (append_new(target, PyUnicode_Substring(complete, spans.items[i].start,
                                                   spans.items[i].end)) < 0) {
            goto done;
        }
    }
    {
        PyObject *size_obj = PyLong_FromSsize_t(size);
        if (size_obj == NULL) {
            goto done;
        }
        int rc = set_attr(parser, P_DATA, target);
        if (rc == 0) {
            rc = set_attr(parser, P_DATA_SIZE, size_obj);
        }
        Py_DECREF(size_obj);
        if (rc < 0 || set_attr(parser, P_EVENT_TYPE, event_type) < 0
            || set_attr(parser, P_OWN_ID, own_id) < 0
            || set_attr(parser, P_ID_BUFFER, id_buffer) < 0
            || set_attr(parser, P_LAST_EVENT_ID, committed) < 0) {
            goto done;
        }
    }
    result = 0;

done:
    if (spans.items != spans.local) {
        PyMem_Free(spans.items);
    }
    Py_XDECREF(data);
    Py_XDECREF(new_list);
    Py_XDECREF(max_obj);
    Py_XDECREF(event_type);
    Py_XDECREF(own_id);
    Py_XDECREF(id_buffer);
    Py_XDECREF(committed);
    Py_XDECREF(type_cache);
    return result;
}

/* process(parser, complete, out): Parser._process, callable from Python. */
static PyObject *
process(PyObject *parser, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "process() takes parser, complete and out (%zd given)",
                     nargs + 1);
        return NULL;
    }
    if (!PyUnicode_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "process() needs a str and a list");
        return NULL;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(args[0]) < 0) {
        return NULL;
    }
#endif
    if (process_lines(parser, args[0], PyUnicode_GET_LENGTH(args[0]), 0, args[1]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* --- Parser.feed --------------------------------------------------------------------------- */

static PyObject *state_cls;             /* sse_core._parser._State, fetched on first use */
static PyObject *state_open;            /* _State.OPEN */
static PyTypeObject *utf8_decoder_cls;  /* encodings.utf_8.IncrementalDecoder */
static PyObject *s_state, *s_raise_not_open, *s_decoder, *s_buffer, *s_errors, *s_decode;
static PyObject *s_is_at_start, *s_pending_lf, *s_tail, *s_tail_size, *s_max_line_length;
static PyObject *s_max_line_length_attr;

/* self._decoder.decode(data). For the standard UTF-8 incremental decoder this does what its
 * (Python) decode method does -- decode buffer + data without the final flag and keep the
 * undecoded end in .buffer -- without the interpreter. */
static PyObject *
decode_chunk(PyObject *parser, PyObject *data)
{
    PyObject *decoder = get_attr(parser, P_DECODER);
    if (decoder == NULL) {
        return NULL;
    }
    PyObject *buffer = NULL, *errors = NULL, *text = NULL, *joined = NULL;
    if (Py_TYPE(decoder) != utf8_decoder_cls
        || (buffer = PyObject_GetAttr(decoder, s_buffer)) == NULL
        || (errors = PyObject_GetAttr(decoder, s_errors)) == NULL
        || !PyBytes_CheckExact(buffer) || !PyUnicode_Check(errors)) {
        PyErr_Clear();
        text = PyObject_CallMethodOneArg(decoder, s_decode, data);
        goto done;
    }
    const char *error_mode = PyUnicode_AsUTF8(errors);
    if (error_mode == NULL) {
        goto done;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        goto done;
    }
    const char *bytes = view.buf;
    Py_ssize_t len = view.len, held = PyBytes_GET_SIZE(buffer);
    if (held > 0) {
        joined = PyBytes_FromStringAndSize(NULL, held + len);
        if (joined == NULL) {
            PyBuffer_Release(&view);
            goto done;
        }
        memcpy(PyBytes_AS_STRING(joined), PyBytes_AS_STRING(buffer), (size_t)held);
        memcpy(PyBytes_AS_STRING(joined) + held, view.buf, (size_t)len);
        bytes = PyBytes_AS_STRING(joined);
        len += held;
    }
    Py_ssize_t consumed = len;
    text = PyUnicode_DecodeUTF8Stateful(bytes, len, error_mode, &consumed);
    if (text != NULL && (consumed < len || held > 0)) {
        PyObject *rest = PyBytes_FromStringAndSize(bytes + consumed, len - consumed);
        if (rest == NULL || PyObject_SetAttr(decoder, s_buffer, rest) < 0) {
            Py_CLEAR(text);
        }
        Py_XDECREF(rest);
    }
    PyBuffer_Release(&view);
done:
    Py_XDECREF(joined);
    Py_XDECREF(buffer);
    Py_XDECREF(errors);
    Py_DECREF(decoder);
    return text;
}

/* Index of the last line ending (LF, or also CR with `has_cr`) of `text`, or -1. */
static Py_ssize_t
rfind_eol(PyObject *text, int has_cr)
{
    int kind = PyUnicode_KIND(text);
    const void *buf = PyUnicode_DATA(text);
    for (Py_ssize_t i = PyUnicode_GET_LENGTH(text) - 1; i >= 0; i--) {
        Py_UCS4 c = PyUnicode_READ(kind, buf, i);
        if (c == '\n' || (has_cr && c == '\r')) {
            return i;
        }
    }
    return -1;
}

static int
set_bool(PyObject *obj, int index, int value)
{
    return set_attr(obj, index, value ? Py_True : Py_False);
}

/* Parser.feed(data) for an open or failed parser: the Python method, step by step, with
 * _process done by process_lines. Returns the list of items. */
static PyObject *feed_py; /* sse_core._parser._feed_py, fetched on first use */

/* func(self, *args, **kwargs) from a vectorcall's arguments without self. */
static PyObject *
call_with_self(PyObject *func, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    Py_ssize_t total = nargs + (kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames));
    PyObject *local[8];
    PyObject **stack = local;
    if (total + 1 > (Py_ssize_t)(sizeof(local) / sizeof(local[0]))) {
        stack = PyMem_Malloc((size_t)(total + 1) * sizeof(PyObject *));
        if (stack == NULL) {
            return PyErr_NoMemory();
        }
    }
    stack[0] = self;
    for (Py_ssize_t i = 0; i < total; i++) {
        stack[i + 1] = args[i];
    }
    PyObject *result = PyObject_Vectorcall(func, stack, (size_t)(nargs + 1), kwnames);
    if (stack != local) {
        PyMem_Free(stack);
    }
    return result;
}

/* The pure-Python function kept as <module>.<name> for calls with unusual arguments. */
static PyObject *
python_fallback(PyObject **slot, const char *module_name, const char *name)
{
    if (*slot == NULL) {
        PyObject *func = lazy_attr(slot, module_name, name);
        if (func == NULL) {
            return NULL;
        }
        if (!PyFunction_Check(func)) {
            Py_CLEAR(*slot);
            PyErr_Format(PyExc_RuntimeError, "%s.%s is not the pure-Python function",
                         module_name, name);
            return NULL;
        }
    }
    return *slot;
}

/* "".join(tail + [text[:len]]): the pieces of the unfinished line and the text's whole lines,
 * copied once into a str of the widest kind among them (the Python code copies the text's
 * lines out first, then joins). The result is only read by process_lines, which makes every
 * str it hands out canonical (PyUnicode_Substring, join_data); it may hold characters of a
 * narrower kind than its own. NULL without an exception when a piece is not an exact str
 * (the caller then does what the Python code does). */
static PyObject *
join_tail(PyObject *tail, PyObject *text, Py_ssize_t len)
{
    Py_ssize_t n_pieces = PyList_GET_SIZE(tail), total = len;
    Py_UCS4 top = PyUnicode_MAX_CHAR_VALUE(text);
    for (Py_ssize_t i = 0; i < n_pieces; i++) {
        PyObject *piece = PyList_GET_ITEM(tail, i);
        if (!PyUnicode_CheckExact(piece)) {
            return NULL;
        }
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(piece) < 0) {
            return NULL;
        }
#endif
        Py_UCS4 m = PyUnicode_MAX_CHAR_VALUE(piece);
        top = m > top ? m : top;
        total += PyUnicode_GET_LENGTH(piece);
    }
    PyObject *result = PyUnicode_New(total, top);
    if (result == NULL) {
        return NULL;
    }
    int kind = PyUnicode_KIND(result);
    void *buf = PyUnicode_DATA(result);
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < n_pieces; i++) {
        PyObject *piece = PyList_GET_ITEM(tail, i);
        Py_ssize_t piece_len = PyUnicode_GET_LENGTH(piece);
        copy_chars(kind, buf, at, PyUnicode_KIND(piece), PyUnicode_DATA(piece), 0, piece_len);
        at += piece_len;
    }
    copy_chars(kind, buf, at, PyUnicode_KIND(text), PyUnicode_DATA(text), 0, len);
    return result;
}

static PyObject *
feed(PyObject *parser, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 1 || kwnames != NULL) {
        /* parser.feed(data=...) or wrong arguments: the Python method, for its errors. */
        PyObject *func = python_fallback(&feed_py, "sse_core._parser", "_feed_py");
        return func == NULL ? NULL : call_with_self(func, parser, args, nargs, kwnames);
    }
    if (state_open == NULL) {
        if (lazy_attr(&state_cls, "sse_core._parser", "_State") == NULL) {
            return NULL;
        }
        state_open = PyObject_GetAttrString(state_cls, "OPEN");
        if (state_open == NULL) {
            return NULL;
        }
    }
    PyObject *state = get_attr(parser, P_STATE);
    if (state == NULL) {
        return NULL;
    }
    int is_open = state == state_open;
    Py_DECREF(state);
    if (!is_open) {
        PyObject *r = PyObject_CallMethodNoArgs(parser, s_raise_not_open);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }

    PyObject *result = NULL, *text = NULL, *tail = NULL, *complete = NULL, *rest = NULL;
    PyObject *max_obj = NULL, *out = NULL, *flag = NULL;
    text = decode_chunk(parser, args[0]);
    if (text == NULL) {
        return NULL;
    }
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "Parser._decoder.decode() must return str");
        goto done;
    }
    if (PyUnicode_GET_LENGTH(text) == 0) {
        goto empty;
    }
    /* "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order Mark (BOM)". */
    if ((flag = get_attr(parser, P_IS_AT_START)) == NULL) {
        goto done;
    }
    int truth = PyObject_IsTrue(flag);
    Py_CLEAR(flag);
    if (truth < 0) {
        goto done;
    }
    if (truth) {
        if (set_bool(parser, P_IS_AT_START, 0) < 0) {
            goto done;
        }
        if (PyUnicode_READ_CHAR(text, 0) == 0xFEFF) {
            Py_SETREF(text, PyUnicode_Substring(text, 1, PyUnicode_GET_LENGTH(text)));
            if (text == NULL) {
                goto done;
            }
            if (PyUnicode_GET_LENGTH(text) == 0) {
                goto empty;
            }
        }
    }
    /* A CR ended the previous chunk; an LF right after it completes a CRLF pair. */
    if ((flag = get_attr(parser, P_PENDING_LF)) == NULL) {
        goto done;
    }
    truth = PyObject_IsTrue(flag);
    Py_CLEAR(flag);
    if (truth < 0) {
        goto done;
    }
    if (truth) {
        if (set_bool(parser, P_PENDING_LF, 0) < 0) {
            goto done;
        }
        if (PyUnicode_READ_CHAR(text, 0) == '\n') {
            Py_SETREF(text, PyUnicode_Substring(text, 1, PyUnicode_GET_LENGTH(text)));
            if (text == NULL) {
                goto done;
            }
            if (PyUnicode_GET_LENGTH(text) == 0) {
                goto empty;
            }
        }
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    /* "a CRLF pair, a single LF, and a single CR ... being the ways in which a line can
     * end". The Python code normalises all three to LF first; here the line scan finds them
     * in place (find_eol), which gives the same lines without a copy of the text. */
    int has_cr = PyUnicode_FindChar(text, '\r', 0, n, 1) >= 0;
    if (has_cr
        && set_bool(parser, P_PENDING_LF, PyUnicode_READ_CHAR(text, n - 1) == '\r') < 0) {
        goto done;
    }
    Py_ssize_t end = rfind_eol(text, has_cr), max_line;
    if ((max_obj = get_attr(parser, P_MAX_LINE_LENGTH_ATTR)) == NULL
        || get_ssize(max_obj, &max_line) < 0
        || (tail = get_attr(parser, P_TAIL)) == NULL) {
        goto done;
    }
    if (!PyList_Check(tail)) {
        PyErr_SetString(PyExc_TypeError, "Parser._tail must be a list");
        goto done;
    }
    if (end < 0) {
        /* No line ends in this chunk: keep the piece until one does. */
        PyObject *size_obj = get_attr(parser, P_TAIL_SIZE);
        Py_ssize_t size;
        if (size_obj == NULL) {
            goto done;
        }
        truth = get_ssize(size_obj, &size);
        Py_DECREF(size_obj);
        if (truth < 0) {
            goto done;
        }
        size += n;
        if (size > max_line
            && fail_limit(parser, s_max_line_length, size, max_obj, NULL) < 0) {
            goto done;
        }
        if (PyList_Append(tail, text) < 0 || (size_obj = PyLong_FromSsize_t(size)) == NULL) {
            goto done;
        }
        truth = set_attr(parser, P_TAIL_SIZE, size_obj);
        Py_DECREF(size_obj);
        if (truth < 0) {
            goto done;
        }
        goto empty;
    }
    /* `complete[:complete_len]` holds the whole lines: the text itself when no line was
     * pending (no copy), else the pieces of the pending line joined with the text's lines. */
    Py_ssize_t complete_len = end + 1;
    if (PyList_GET_SIZE(tail) > 0) {
        complete = join_tail(tail, text, end + 1);
        if (complete == NULL && !PyErr_Occurred()) {
            /* Unusual pieces in the tail: exactly what the Python code does. */
            PyObject *piece = PyUnicode_Substring(text, 0, end + 1);
            if (append_new(tail, piece) < 0) {
                goto done;
            }
            complete = PyUnicode_Join(s_empty, tail);
        }
        if (complete != NULL) {
            complete_len = PyUnicode_GET_LENGTH(complete);
        }
    }
    else {
        Py_INCREF(text);
        complete = text;
    }
    if (complete == NULL || (rest = PyUnicode_Substring(text, end + 1, n)) == NULL) {
        goto done;
    }
    {
        Py_ssize_t rest_len = PyUnicode_GET_LENGTH(rest);
        PyObject *new_tail = rest_len ? PyList_New(1) : PyList_New(0);
        if (new_tail == NULL) {
            goto done;
        }
        if (rest_len) {
            Py_INCREF(rest);
            PyList_SET_ITEM(new_tail, 0, rest);
        }
        truth = set_attr(parser, P_TAIL, new_tail);
        Py_DECREF(new_tail);
        PyObject *size_obj = truth < 0 ? NULL : PyLong_FromSsize_t(rest_len);
        if (size_obj == NULL) {
            goto done;
        }
        truth = set_attr(parser, P_TAIL_SIZE, size_obj);
        Py_DECREF(size_obj);
        if (truth < 0 || (out = PyList_New(0)) == NULL) {
            goto done;
        }
    }
    if (complete_len - 1 > max_line) {
        /* Only a chunk longer than the limit can hold a line longer than the limit. (With CRLF
         * line endings complete_len counts each pair as two characters, so this lets more
         * chunks through to the check; the check itself measures lines without endings.) */
        Text whole = TEXT_INIT(complete, complete_len, has_cr);
        Py_ssize_t offset = 0;
        while (offset <= complete_len) {
            Py_ssize_t stop = find_eol(&whole, offset);
            Py_ssize_t next = stop < 0 ? complete_len + 1 : after_eol(&whole, stop);
            stop = stop < 0 ? complete_len : stop;
            if (stop - offset > max_line) {
                if (process_lines(parser, complete, offset, has_cr, out) < 0
                    || fail_limit(parser, s_max_line_length, stop - offset, max_obj, out) < 0) {
                    goto done;
                }
            }
            offset = next;
        }
    }
    if (process_lines(parser, complete, complete_len, has_cr, out) < 0) {
        goto done;
    }
    if (PyUnicode_GET_LENGTH(rest) > max_line
        && fail_limit(parser, s_max_line_length, PyUnicode_GET_LENGTH(rest), max_obj, out)
               < 0) {
        goto done;
    }
    result = out;
    out = NULL;
    goto done;
empty:
    result = PyList_New(0);
done:
    Py_XDECREF(text);
    Py_XDECREF(tail);
    Py_XDECREF(complete);
    Py_XDECREF(rest);
    Py_XDECREF(max_obj);
    Py_XDECREF(out);
    return result;
}

/* --- the serializer ------------------------------------------------------------------------ */

/* serialize_event(data, *, event=None, id=None, retry=None) and serialize(item) with exactly
 * the behaviour of the pure-Python functions in sse_core/_serializer.py, their
 * specification. The C code writes the common valid case -- str fields (exact str, not
 * subclasses), valid event and id values, a retry that fits a long long, no lone surrogate --
 * straight into the bytes object; for anything else (wrong types or argument names, invalid
 * values, lone surrogates, subclasses) it calls the Python function with the same arguments,
 * so every error is the Python one by construction. */

static PyObject *py_serialize_event; /* the pure-Python functions, fetched on first use */
static PyObject *py_serialize;
static PyObject *s_event, *s_id, *s_retry;
static PyTypeObject *retry_cls;
static Py_ssize_t off_ms;

/* The pure-Python function: sse_core._serializer.<private> once the accelerator is wired in
 * (the public name is then this module's function), else the public name. */
static PyObject *
python_function(PyObject **slot, const char *private_name, const char *name)
{
    if (*slot == NULL) {
        PyObject *module = PyImport_ImportModule("sse_core._serializer");
        if (module == NULL) {
            return NULL;
        }
        PyObject *func = PyObject_GetAttrString(module, private_name);
        if (func == NULL) {
            PyErr_Clear();
            func = PyObject_GetAttrString(module, name);
        }
        Py_DECREF(module);
        if (func == NULL) {
            return NULL;
        }
        if (!PyFunction_Check(func)) {
            Py_DECREF(func);
            PyErr_Format(PyExc_RuntimeError,
                         "sse_core._serializer.%s is not the pure-Python function", name);
            return NULL;
        }
        *slot = func;
    }
    return *slot;
}

static PyObject *
fallback(PyObject **slot, const char *private_name, const char *name, PyObject *const *args,
         Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *func = python_function(slot, private_name, name);
    if (func == NULL) {
        return NULL;
    }
    return PyObject_Vectorcall(func, args, (size_t)nargs, kwnames);
}

/* Whether the str has CR, LF or (with `nul`) U+0000. */
static int
has_line_break(PyObject *s, int nul)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    return PyUnicode_FindChar(s, '\n', 0, n, 1) >= 0 || PyUnicode_FindChar(s, '\r', 0, n, 1) >= 0
           || (nul && PyUnicode_FindChar(s, 0, 0, n, 1) >= 0);
}

/* The UTF-8 bytes of a str: its own buffer when it is ASCII (the common case, no copy),
 * else a bytes object from CPython's encoder, held in `owner` until release_utf8. */
typedef struct {
    const char *buf;
    Py_ssize_t len;
    PyObject *owner;
} Utf8;

/* 1 with `*v` set; 0 without an exception when `s` holds a lone surrogate (UTF-8 cannot
 * encode it: the caller falls back to Python for the error); -1 with an exception. */
static int
utf8_view(PyObject *s, Utf8 *v)
{
    v->owner = NULL;
    if (PyUnicode_IS_ASCII(s)) {
        v->buf = (const char *)PyUnicode_DATA(s);
        v->len = PyUnicode_GET_LENGTH(s);
        return 1;
    }
    PyObject *bytes = PyUnicode_AsUTF8String(s);
    if (bytes == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    v->owner = bytes;
    v->buf = PyBytes_AS_STRING(bytes);
    v->len = PyBytes_GET_SIZE(bytes);
    return 1;
}

static void
release_utf8(Utf8 *v)
{
    Py_CLEAR(v->owner);
}

/* UTF-8 data, with where its first LF and first CR are (NULL when there is none). */
typedef struct {
    Utf8 text;
    const char *lf, *cr;
} Data;

/* The size of UTF-8 data once each line ending (CR, LF or a CRLF pair) is written as the 7
 * bytes of "\ndata: ". CR and LF are ASCII, so they are never inside a multibyte sequence. */
static Py_ssize_t
data_size(Data *d)
{
    const char *p = d->text.buf, *end = p + d->text.len;
    Py_ssize_t size = d->text.len;
    d->lf = memchr(p, '\n', (size_t)(end - p));
    d->cr = memchr(p, '\r', (size_t)(end - p));
    for (const char *q = d->lf; q != NULL; q = memchr(q + 1, '\n', (size_t)(end - q - 1))) {
        size += 6;
    }
    for (const char *q = d->cr; q != NULL; q = memchr(q + 1, '\r', (size_t)(end - q - 1))) {
        /* a CRLF pair is one line ending: its LF was counted */
        size += q + 1 < end && q[1] == '\n' ? -1 : 6;
    }
    return size;
}

/* Write UTF-8 data at `out` with each line ending as "\ndata: "; return the end. The text
 * between line endings is copied in blocks (memchr finds the next CR and the next LF; the
 * first ones were found by data_size). */
static char *
data_write(char *out, const Data *d)
{
    const char *p = d->text.buf, *end = p + d->text.len, *lf = d->lf, *cr = d->cr;
    for (;;) {
        const char *q = lf == NULL ? cr : (cr == NULL || lf < cr ? lf : cr);
        if (q == NULL) {
            memcpy(out, p, (size_t)(end - p));
            return out + (end - p);
        }
        memcpy(out, p, (size_t)(q - p));
        out += q - p;
        memcpy(out, "\ndata: ", 7);
        out += 7;
        p = q + (*q == '\r' && q + 1 < end && q[1] == '\n' ? 2 : 1);
        if (lf != NULL && lf < p) {
            lf = memchr(p, '\n', (size_t)(end - p));
        }
        if (cr != NULL && cr < p) {
            cr = memchr(p, '\r', (size_t)(end - p));
        }
    }
}

static char *
bytes_write(char *out, const Utf8 *v)
{
    memcpy(out, v->buf, (size_t)v->len);
    return out + v->len;
}

/* The bytes of an event: [retry line] [id line] [event line] data lines, blank line. `event`
 * is NULL for "message" (no event line), `id` NULL for none, `retry` < 0 for none. The
 * values are known valid. Returns NULL without an exception when a value holds a lone
 * surrogate (the caller falls back to Python for the error). */
static PyObject *
write_event(PyObject *data, PyObject *event, PyObject *id, long long retry)
{
    char retry_text[40];
    int retry_len = 0;
    if (retry >= 0) {
        retry_len = snprintf(retry_text, sizeof(retry_text), "retry: %lld\n", retry);
    }
    Data d = {{NULL, 0, NULL}, NULL, NULL};
    Utf8 e = {NULL, 0, NULL}, i = {NULL, 0, NULL};
    PyObject *result = NULL;
    int rc = utf8_view(data, &d.text);
    if (rc > 0 && event != NULL) {
        rc = utf8_view(event, &e);
    }
    if (rc > 0 && id != NULL) {
        rc = utf8_view(id, &i);
    }
    if (rc <= 0) {
        goto done;
    }
    Py_ssize_t size = retry_len + (id != NULL ? 5 + i.len : 0)
                      + (event != NULL ? 8 + e.len : 0) + 6 + data_size(&d) + 2;
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) {
        goto done;
    }
    char *out = PyBytes_AS_STRING(result);
    memcpy(out, retry_text, (size_t)retry_len);
    out += retry_len;
    if (id != NULL) {
        memcpy(out, "id: ", 4);
        out = bytes_write(out + 4, &i);
        *out++ = '\n';
    }
    if (event != NULL) {
        memcpy(out, "event: ", 7);
        out = bytes_write(out + 7, &e);
        *out++ = '\n';
    }
    memcpy(out, "data: ", 6);
    out = data_write(out + 6, &d);
    memcpy(out, "\n\n", 2);
    assert(out + 2 == PyBytes_AS_STRING(result) + size);
done:
    release_utf8(&d.text);
    release_utf8(&e);
    release_utf8(&i);
    return result;
}

/* Whether `event` is "message" (compared by value). */
static int
is_message(PyObject *event)
{
    return event == s_message
           || (PyUnicode_GET_LENGTH(event) == 7 && PyUnicode_IS_ASCII(event)
               && memcmp(PyUnicode_DATA(event), "message", 7) == 0);
}

/* serialize_event(data, *, event=None, id=None, retry=None). */
static PyObject *
serialize_event(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    PyObject *event = Py_None, *id = Py_None, *retry_obj = Py_None;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs != 1 || !PyUnicode_CheckExact(args[0])) {
        goto slow;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (name == s_event) {
            event = args[nargs + i];
        }
        else if (name == s_id) {
            id = args[nargs + i];
        }
        else if (name == s_retry) {
            retry_obj = args[nargs + i];
        }
        else {
            goto slow; /* an unknown or not interned name: Python decides */
        }
    }
    PyObject *data = args[0];
    if (event != Py_None) {
        if (!PyUnicode_CheckExact(event) || PyUnicode_GET_LENGTH(event) == 0
            || has_line_break(event, 0)) {
            goto slow;
        }
        if (is_message(event)) {
            event = Py_None;
        }
    }
    if (id != Py_None && (!PyUnicode_CheckExact(id) || has_line_break(id, 1))) {
        goto slow;
    }
    long long retry = -1;
    if (retry_obj != Py_None) {
        if (!PyLong_CheckExact(retry_obj)) {
            goto slow;
        }
        int overflow;
        retry = PyLong_AsLongLongAndOverflow(retry_obj, &overflow);
        if (overflow || retry < 0) {
            goto slow; /* negative (refused) or beyond a long long (written by Python) */
        }
    }
    PyObject *result = write_event(data, event == Py_None ? NULL : event,
                                   id == Py_None ? NULL : id, retry);
    if (result != NULL || PyErr_Occurred()) {
        return result;
    }
slow:
    return fallback(&py_serialize_event, "_serialize_event_py", "serialize_event", args, nargs,
                    kwnames);
}

/* The bytes of ":" + text + "\n", or NULL without an exception for a lone surrogate. */
static PyObject *
write_comment(PyObject *text)
{
    Utf8 t;
    int rc = utf8_view(text, &t);
    if (rc <= 0) {
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, t.len + 2);
    if (result != NULL) {
        char *out = PyBytes_AS_STRING(result);
        *out = ':';
        out = bytes_write(out + 1, &t);
        *out = '\n';
    }
    release_utf8(&t);
    return result;
}

/* serialize(item). */
static PyObject *
serialize(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    if (nargs != 1 || kwnames != NULL) {
        goto slow;
    }
    PyObject *item = args[0], *result = NULL;
    PyTypeObject *type = Py_TYPE(item);
    if (type == event_cls) {
        /* The record's values were checked when it was built; as in Python, only the event
         * type is looked at again (Python checks types outside its cache of valid lines). */
        PyObject *data = SLOT(item, off_data), *event = SLOT(item, off_event);
        PyObject *id = SLOT(item, off_id);
        if (data == NULL || event == NULL || id == NULL || !PyUnicode_CheckExact(data)
            || !PyUnicode_CheckExact(event) || (id != Py_None && !PyUnicode_CheckExact(id))
            || PyUnicode_GET_LENGTH(event) == 0 || has_line_break(event, 0)) {
            goto slow;
        }
        result = write_event(data, is_message(event) ? NULL : event,
                             id == Py_None ? NULL : id, -1);
    }
    else if (type == comment_cls) {
        PyObject *text = SLOT(item, off_text);
        if (text == NULL || !PyUnicode_CheckExact(text)) {
            goto slow;
        }
        result = write_comment(text);
    }
    else if (type == retry_cls) {
        PyObject *ms = SLOT(item, off_ms);
        if (ms == NULL || !PyLong_CheckExact(ms)) {
            goto slow;
        }
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(ms, &overflow);
        if (overflow || value < 0) {
            goto slow;
        }
        char text[40];
        int len = snprintf(text, sizeof(text), "retry: %lld\n", value);
        result = PyBytes_FromStringAndSize(text, len);
    }
    if (result != NULL || PyErr_Occurred()) {
        return result;
    }
slow:
    return fallback(&py_serialize, "_serialize_py", "serialize", args, nargs, kwnames);
}

/* --- Event.__init__ ------------------------------------------------------------------------ */

/* event_init(self, *, data, event="message", id=None, last_event_id="") is Event.__init__ of
 * sse_core/_events.py (kept there as _event_init_py, its specification): for the common valid
 * case -- an Event (not a subclass), keywords only, exact str values (id may be None), an
 * event type that is not empty and has no CR or LF, ids without CR, LF or U+0000 -- it stores
 * the slots directly, as the Python method does through the slot descriptors. Anything else
 * (positional arguments, unknown or missing keywords, other types, str subclasses, invalid
 * values) goes to the Python method with the same arguments, so every error is the Python
 * one by construction. */

static PyObject *event_init_py; /* sse_core._events._event_init_py, fetched on first use */
static PyObject *s_data_kw, *s_last_event_id_kw; /* "data", "last_event_id" */
static PyObject *s_init;                          /* "__init__" */

static PyObject *
event_init_fallback(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (event_init_py == NULL) {
        PyObject *events = PyImport_ImportModule("sse_core._events");
        if (events == NULL) {
            return NULL;
        }
        PyObject *func = PyObject_GetAttrString(events, "_event_init_py");
        Py_DECREF(events);
        if (func == NULL) {
            /* Not wired yet: Event.__init__ is still the Python method. */
            PyErr_Clear();
            PyObject *dict = PyObject_GetAttrString((PyObject *)event_cls, "__dict__");
            if (dict == NULL) {
                return NULL;
            }
            func = PyMapping_GetItemString(dict, "__init__");
            Py_DECREF(dict);
            if (func == NULL) {
                return NULL;
            }
        }
        if (!PyFunction_Check(func)) {
            Py_DECREF(func);
            PyErr_SetString(PyExc_RuntimeError,
                            "sse_core._events._event_init_py is not the pure-Python function");
            return NULL;
        }
        event_init_py = func;
    }
    return call_with_self(event_init_py, self, args, nargs, kwnames);
}

/* Whether `s` (an exact str) has CR or LF, or with `nul` also U+0000. */
static int
has_break_or_nul(PyObject *s, int nul)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (PyUnicode_IS_ASCII(s)) {
        const unsigned char *p = PyUnicode_1BYTE_DATA(s);
        for (Py_ssize_t i = 0; i < n; i++) {
            unsigned char c = p[i];
            if (c <= '\r' && (c == '\n' || c == '\r' || (nul && c == 0))) {
                return 1;
            }
        }
        return 0;
    }
    return has_line_break(s, nul);
}

static PyObject *
event_init(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs != 0 || kwnames == NULL || Py_TYPE(self) != event_cls) {
        goto slow;
    }
    PyObject *data = NULL, *event = s_message, *id = Py_None, *leid = s_empty;
    Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
    unsigned seen = 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        unsigned bit;
        if (name == s_data_kw) {
            bit = 1;
        }
        else if (name == s_event) {
            bit = 2;
        }
        else if (name == s_id) {
            bit = 4;
        }
        else if (name == s_last_event_id_kw) {
            bit = 8;
        }
        else if (!PyUnicode_CheckExact(name)) {
            goto slow;
        }
        else if (PyUnicode_Compare(name, s_data_kw) == 0) {
            bit = 1;
        }
        else if (PyUnicode_Compare(name, s_event) == 0) {
            bit = 2;
        }
        else if (PyUnicode_Compare(name, s_id) == 0) {
            bit = 4;
        }
        else if (PyUnicode_Compare(name, s_last_event_id_kw) == 0) {
            bit = 8;
        }
        else {
            goto slow;
        }
        if (seen & bit) {
            goto slow;
        }
        seen |= bit;
        PyObject *value = args[i];
        switch (bit) {
        case 1:
            data = value;
            break;
        case 2:
            event = value;
            break;
        case 4:
            id = value;
            break;
        default:
            leid = value;
        }
    }
    if (data == NULL || !PyUnicode_CheckExact(data) || !PyUnicode_CheckExact(event)
        || !PyUnicode_CheckExact(leid) || (id != Py_None && !PyUnicode_CheckExact(id))) {
        goto slow;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(event) < 0 || PyUnicode_READY(leid) < 0
        || (id != Py_None && PyUnicode_READY(id) < 0)) {
        return NULL;
    }
#endif
    if (event != s_message
        && (PyUnicode_GET_LENGTH(event) == 0 || has_break_or_nul(event, 0))) {
        goto slow;
    }
    if ((id != Py_None && has_break_or_nul(id, 1)) || has_break_or_nul(leid, 1)) {
        goto slow;
    }
    Py_INCREF(data);
    Py_XSETREF(SLOT(self, off_data), data);
    Py_INCREF(event);
    Py_XSETREF(SLOT(self, off_event), event);
    Py_INCREF(id);
    Py_XSETREF(SLOT(self, off_id), id);
    Py_INCREF(leid);
    Py_XSETREF(SLOT(self, off_leid), leid);
    Py_RETURN_NONE;
slow:
    return event_init_fallback(self, args, nargs, kwnames);
}

/* --- Event(...) ---------------------------------------------------------------------------- */

/* Calling the Event class goes through type.__call__: the keyword arguments are packed into a
 * dict for object.__new__ and slot_tp_init, which looks __init__ up and unpacks the dict again
 * for the call. event_vectorcall, installed as the class's tp_vectorcall (which subclasses do
 * not inherit), does what type.__call__ does for this class -- allocate the instance as
 * object.__new__ does, then call __init__ -- directly with the caller's arguments, as long as
 * the class is as sse_core._events leaves it: its __new__ is object.__new__ and its __init__
 * is event_init. Anything else -- a subclass, an __init__ or __new__ assigned later -- goes to
 * type.__call__ itself. The check is redone only when the class's version tag changes
 * (CPython gives a class a new tag whenever one of its attributes is set). */

static unsigned int event_plain_tag; /* Event's version tag when it was last found plain */

/* Whether calling Event can skip type.__call__ (see above); -1 with an exception. */
static int
event_is_plain(void)
{
    PyTypeObject *cls = event_cls;
    if (cls->tp_version_tag != 0 && cls->tp_version_tag == event_plain_tag) {
        return 1;
    }
    if (cls->tp_new != PyBaseObject_Type.tp_new || (cls->tp_flags & Py_TPFLAGS_IS_ABSTRACT)) {
        return 0;
    }
    PyObject *init = PyObject_GetAttr((PyObject *)cls, s_init);
    if (init == NULL) {
        return -1;
    }
    int is_ours = Py_IS_TYPE(init, &PyMethodDescr_Type)
                  && ((PyMethodDescrObject *)init)->d_method->ml_meth
                         == (PyCFunction)(void (*)(void))event_init;
    Py_DECREF(init);
    if (is_ours) {
        /* Getting the attribute gave the class a valid tag if it had none. */
        event_plain_tag = cls->tp_version_tag;
    }
    return is_ours;
}

/* type.__call__(cls, *args, **kwargs) from a vectorcall's arguments. */
static PyObject *
type_call_generic(PyObject *cls, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *tuple = PyTuple_New(nargs), *kwargs = NULL, *result = NULL;
    if (tuple == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(tuple, i, args[i]);
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nkw > 0) {
        kwargs = PyDict_New();
        if (kwargs == NULL) {
            goto done;
        }
        for (Py_ssize_t i = 0; i < nkw; i++) {
            if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
                goto done;
            }
        }
    }
    result = PyType_Type.tp_call(cls, tuple, kwargs);
done:
    Py_DECREF(tuple);
    Py_XDECREF(kwargs);
    return result;
}

static PyObject *
event_vectorcall(PyObject *cls, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    int is_plain = (PyTypeObject *)cls == event_cls ? event_is_plain() : 0;
    if (is_plain < 0) {
        return NULL;
    }
    if (!is_plain) {
        return type_call_generic(cls, args, nargs, kwnames);
    }
    /* object.__new__ (it accepts any arguments when __init__ is overridden), then
     * __init__, whose result type.__call__ would check to be None: event_init's is. */
    PyObject *self = event_cls->tp_alloc(event_cls, 0);
    if (self == NULL) {
        return NULL;
    }
    PyObject *none = event_init(self, args, nargs, kwnames);
    if (none == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    Py_DECREF(none);
    return self;
}

/* is_event_call_direct(): whether calling Event now takes event_vectorcall's direct path. */
static PyObject *
is_event_call_direct(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    if (event_cls->tp_vectorcall != event_vectorcall) {
        Py_RETURN_FALSE;
    }
    int is_plain = event_is_plain();
    return is_plain < 0 ? NULL : PyBool_FromLong(is_plain);
}

/* --- module -------------------------------------------------------------------------------- */

/* `process` is published as a method descriptor of `object` rather than a plain builtin
 * function: called directly it takes (parser, complete, out), and stored as
 * Parser._process it binds to the parser like a Python method, with no wrapper frame. */
/* The docstring is exactly that of Parser.feed in sse_core/_parser.py (after
 * inspect.cleandoc; tests/test_speedups.py checks it), so that the method can be stored as
 * Parser.feed directly, with no Python wrapper frame, without losing the docs. */
static PyMethodDef feed_def = {
    "feed", (PyCFunction)(void (*)(void))feed, METH_FASTCALL | METH_KEYWORDS,
    "feed($self, /, data)\n--\n\n"
    "Parse the next chunk of the stream.\n"
    "\n"
    "Args:\n"
    "    data: The next bytes of the body, of any length. ``b\"\"`` is not end of stream.\n"
    "\n"
    "Returns:\n"
    "    The items completed by this chunk, in stream order; an empty list means that\n"
    "    more bytes are needed.\n"
    "\n"
    "Raises:\n"
    "    LimitExceeded: a line or an event crossed its limit. ``items`` holds what this\n"
    "        call parsed before; the parser is failed afterwards.\n"
    "    RemoteProtocolError: the parser failed earlier.\n"
    "    LocalProtocolError: called after :meth:`feed_eof`.",
};

/* Stored as Event.__init__ it binds like the Python method; its docstring and signature are
 * those of the Python method (which has no docstring of its own). */
static PyMethodDef event_init_def = {
    "event_init", (PyCFunction)(void (*)(void))event_init, METH_FASTCALL | METH_KEYWORDS,
    "event_init($self, /, *, data, event='message', id=None, last_event_id='')\n--\n\n"
    "Event.__init__ in C: the same records and the same errors.",
};

static PyMethodDef process_def = {
    "process", (PyCFunction)(void (*)(void))process, METH_FASTCALL,
    "process(parser, complete, out)\n--\n\n"
    "Parser._process in C: process whole lines (``complete`` is empty or ends with LF),\n"
    "appending the items to ``out`` and storing the spec's buffers back into ``parser``.",
};

/* The docstrings are exactly those of the Python functions in sse_core/_serializer.py (after
 * inspect.cleandoc; tests/test_speedups.py checks them), so that these functions can be
 * published as sse_core.serialize and serialize_event directly, with no wrapper frame. */
static PyMethodDef module_functions[] = {
    {"serialize_event", (PyCFunction)(void (*)(void))serialize_event,
     METH_FASTCALL | METH_KEYWORDS,
     "serialize_event(data, *, event=None, id=None, retry=None)\n--\n\n"
     "Encode an event from plain values, without building an :class:`~sse_core.Event`.\n"
     "\n"
     "The same checks as the records' constructors apply, so the result can never inject.\n"
     "\n"
     "Args:\n"
     "    data: The event's data; CR and CRLF are sent as line breaks.\n"
     "    event: The event type; ``None`` or ``\"message\"`` sends no ``event`` line.\n"
     "    id: The event's id; ``None`` sends no ``id`` line, ``\"\"`` resets the last event ID.\n"
     "    retry: A reconnection time in milliseconds to send before the event, or ``None``.\n"
     "\n"
     "Returns:\n"
     "    The UTF-8 bytes of the ``retry`` line (if any) followed by the event.\n"
     "\n"
     "Raises:\n"
     "    InvalidFieldError: ``event`` is empty or contains CR/LF; ``id`` contains CR, LF or\n"
     "        U+0000; ``retry`` is not a non-negative int; ``data`` is not a str or contains a\n"
     "        lone surrogate."},
    {"serialize", (PyCFunction)(void (*)(void))serialize, METH_FASTCALL | METH_KEYWORDS,
     "serialize(item)\n--\n\n"
     "Encode one item as ``text/event-stream`` bytes.\n"
     "\n"
     "An :class:`~sse_core.Event` becomes its ``id`` line (when ``id`` is not ``None``), its\n"
     "``event`` line (unless it is ``\"message\"``), one ``data:`` line per data line -- at least\n"
     "one, so that empty data is dispatched -- and a blank line. ``last_event_id`` is not\n"
     "written. A :class:`~sse_core.Comment` becomes ``:text``; a :class:`~sse_core.Retry`\n"
     "becomes ``retry: N``. Neither adds a blank line.\n"
     "\n"
     "Encode once and send the same bytes to every client of a broadcast.\n"
     "\n"
     "Args:\n"
     "    item: The event, comment or retry to write.\n"
     "\n"
     "Returns:\n"
     "    The UTF-8 bytes.\n"
     "\n"
     "Raises:\n"
     "    InvalidFieldError: text contains a lone surrogate (not encodable in UTF-8), or\n"
     "        ``item`` is not a stream item."},
    {"is_event_call_direct", is_event_call_direct, METH_NOARGS,
     "is_event_call_direct()\n--\n\n"
     "Whether calling Event skips type.__call__ (allocating the record and calling the C\n"
     "__init__ directly); False once Event's __init__ or __new__ is replaced."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "sse_core._speedups",
    "Optional C accelerator for sse_core (floor 1): process() is Parser._process and feed() "
    "is Parser.feed (sse_core/_parser.py is their specification); serialize() and "
    "serialize_event() are the functions of sse_core/_serializer.py; event_init() is "
    "Event.__init__ (sse_core/_events.py), and calling Event skips type.__call__ "
    "(is_event_call_direct()).",
    -1,
    module_functions,
    NULL,
    NULL,
    NULL,
    NULL,
};

static int
intern_all(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&s_message, "message"},
        {&s_empty, ""},
        {&s_max_event_size, "max_event_size"},
        {&s_fail, "_fail"},
        {&s_data, "_data"},
        {&s_data_size, "_data_size"},
        {&s_event_type, "_event_type"},
        {&s_own_id, "_own_id"},
        {&s_id_buffer, "_id_buffer"},
        {&s_last_event_id, "_last_event_id"},
        {&s_max_event_size_attr, "_max_event_size"},
        {&s_state, "_state"},
        {&s_raise_not_open, "_raise_not_open"},
        {&s_decoder, "_decoder"},
        {&s_buffer, "buffer"},
        {&s_errors, "errors"},
        {&s_decode, "decode"},
        {&s_is_at_start, "_is_at_start"},
        {&s_pending_lf, "_pending_lf"},
        {&s_tail, "_tail"},
        {&s_tail_size, "_tail_size"},
        {&s_max_line_length, "max_line_length"},
        {&s_max_line_length_attr, "_max_line_length"},
        {&s_event, "event"},
        {&s_id, "id"},
        {&s_retry, "retry"},
        {&s_data_kw, "data"},
        {&s_last_event_id_kw, "last_event_id"},
        {&s_init, "__init__"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL) {
            *names[i].slot = PyUnicode_InternFromString(names[i].text);
            if (*names[i].slot == NULL) {
                return -1;
            }
        }
    }
    return 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (intern_all() < 0) {
        return NULL;
    }
    PyObject *slot_names[N_PARSER_SLOTS] = {
        [P_DATA] = s_data,
        [P_DATA_SIZE] = s_data_size,
        [P_EVENT_TYPE] = s_event_type,
        [P_OWN_ID] = s_own_id,
        [P_ID_BUFFER] = s_id_buffer,
        [P_LAST_EVENT_ID] = s_last_event_id,
        [P_MAX_EVENT_SIZE_ATTR] = s_max_event_size_attr,
        [P_STATE] = s_state,
        [P_DECODER] = s_decoder,
        [P_IS_AT_START] = s_is_at_start,
        [P_PENDING_LF] = s_pending_lf,
        [P_TAIL] = s_tail,
        [P_TAIL_SIZE] = s_tail_size,
        [P_MAX_LINE_LENGTH_ATTR] = s_max_line_length_attr,
    };
    for (int i = 0; i < N_PARSER_SLOTS; i++) {
        parser_slot_names[i] = slot_names[i];
    }
    if (utf8_decoder_cls == NULL) {
        PyObject *codec = PyImport_ImportModule("encodings.utf_8");
        if (codec == NULL) {
            return NULL;
        }
        PyObject *cls = PyObject_GetAttrString(codec, "IncrementalDecoder");
        Py_DECREF(codec);
        if (cls == NULL) {
            return NULL;
        }
        utf8_decoder_cls = (PyTypeObject *)cls; /* compared by identity only */
    }
    if (event_cls == NULL) {
        PyObject *events = PyImport_ImportModule("sse_core._events");
        if (events == NULL) {
            return NULL;
        }
        PyTypeObject *event = get_class(events, "Event");
        PyTypeObject *comment = event == NULL ? NULL : get_class(events, "Comment");
        PyTypeObject *retry = comment == NULL ? NULL : get_class(events, "Retry");
        Py_DECREF(events);
        if (retry == NULL || slot_offset(event, "data", &off_data) < 0
            || slot_offset(event, "event", &off_event) < 0
            || slot_offset(event, "id", &off_id) < 0
            || slot_offset(event, "last_event_id", &off_leid) < 0
            || slot_offset(comment, "text", &off_text) < 0
            || slot_offset(retry, "milliseconds", &off_ms) < 0) {
            Py_XDECREF(event);
            Py_XDECREF(comment);
            Py_XDECREF(retry);
            return NULL;
        }
        event_cls = event;
        comment_cls = comment;
        retry_cls = retry;
        if (Py_IS_TYPE(event, &PyType_Type)) {
            event->tp_vectorcall = event_vectorcall; /* see event_is_plain */
        }
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    PyMethodDef *defs[] = {&process_def, &feed_def, &event_init_def};
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        PyObject *func = PyDescr_NewMethod(&PyBaseObject_Type, defs[i]);
        if (func == NULL || PyModule_AddObject(module, defs[i]->ml_name, func) < 0) {
            Py_XDECREF(func);
            Py_DECREF(module);
            return NULL;
        }
    }
    return module;
}
