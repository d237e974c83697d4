/* sse_core._speedups: optional C accelerator for the parser, the serializer and Event (floor 1).
 *
 * The boundary. Python calls this module through three names and nothing else; the module
 * imports nothing of sse_core, reads no private attribute of any sse_core object and replaces
 * no Python function or method. Everything it needs comes in as arguments:
 *
 * - Scanner(max_line_length, max_event_size, last_event_id, Event, Comment, Retry,
 *   LimitExceeded) is the parse state of one stream, owned by the C object and held by the
 *   Python Parser (Parser._scanner). scanner.feed(data) -> list of items is Parser.feed after
 *   its state check; scanner.end() -> is_truncated is the work of Parser.feed_eof;
 *   scanner.last_event_id is the last event ID string. A crossed limit raises
 *   LimitExceeded(limit, value, maximum, items) -- the class passed in -- after emptying the
 *   line and data buffers; Parser.feed then marks itself failed. The specification is the
 *   pure-Python class sse_core._parser._Scanner, with the same methods and the same state,
 *   which both expose read-only under the same names (data, data_size, event_type, own_id,
 *   id_buffer, last_event_id, tail, tail_size, pending_lf, is_at_start, undecoded) so that
 *   tests/test_speedups.py can compare them after every call.
 *   Records are built as sse_core._events._make_event builds them: object.__new__(cls), then
 *   each field set through the class's own descriptor for the public field name (data, event,
 *   id, last_event_id; text; milliseconds), the descriptor protocol's __set__, looked up once
 *   per Scanner. Nothing here knows how the classes lay out their fields.
 * - write_event(data, event, id, retry) -> bytes or None writes the common valid event (exact
 *   str values, valid event type and id, a retry that fits a long long, no lone surrogate) and
 *   returns None for anything else; the public functions of sse_core/_serializer.py call it
 *   first and do everything else themselves, so every error is the Python one.
 * - EventInit(init) wraps the pure-Python Event.__init__ (sse_core/_events.py uses it as a
 *   decorator in the class body when the accelerator is in use). When Python creates the class,
 *   it calls EventInit.__set_name__ (the descriptor protocol), which remembers the class and
 *   its fields' descriptors (data, event, id, last_event_id). A call with the common valid
 *   keywords on an instance of exactly that class checks the values and stores them through
 *   those descriptors, as the Python method does; any other call is the Python method's, for
 *   its records and its errors. The Python method is its __wrapped__.
 *   The one place this module touches a class: __set_name__ also gives that class a direct
 *   call path (its tp_vectorcall) that does what type.__call__ does -- object.__new__, then
 *   __init__ -- while the class keeps that __init__ and object.__new__; type.__call__'s
 *   packing of keyword arguments costs more than the rest of serialize(Event(...)). See
 *   "calling the class".
 *
 * tests/test_speedups.py runs both scanners on the same streams and compares items, errors and
 * state after every call, and compares write_event and EventInit with the Python code. The
 * comments cite WHATWG HTML 9.2.6 "Interpreting an event stream" as the Python does.
 *
 * Speed comes from reading the decoded text in place (no str.split, no per-line str objects
 * except the field values that items keep), recognising CR, LF and CRLF line endings in place
 * rather than normalising a copy, remembering data lines as spans of the text copied once into
 * the event's data, and keeping the parse state in C fields rather than Python attributes.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <string.h>
#include <wchar.h>

/* 10**18 - 1: sse_core._parser.MAX_RETRY_MILLISECONDS. */
#define MAX_RETRY 999999999999999999LL

/* Interned strings, made once at module init. */
static PyObject *s_message, *s_empty, *s_max_event_size, *s_max_line_length;
static PyObject *s_data, *s_event, *s_id, *s_last_event_id, *s_text, *s_milliseconds;
static PyObject *s_init;

/* --- the scanner's state ------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    /* The limits: as given (reported in errors) and clamped to Py_ssize_t. */
    PyObject *max_line_obj, *max_event_obj;
    Py_ssize_t max_line, max_event;
    /* The record classes, their fields' descriptors and the limit error class. */
    PyTypeObject *event_cls, *comment_cls, *retry_cls;
    PyObject *set_data, *set_event, *set_id, *set_leid, *set_text, *set_ms;
    PyObject *limit_error;
    /* "UTF-8 decode": the bytes of a character split across chunks (at most three). */
    unsigned char undecoded[4];
    int n_undecoded;
    int is_at_start; /* no character decoded yet: a BOM may still come */
    int pending_lf;  /* the last character seen was CR: skip one LF that follows */
    PyObject *tail;  /* list of exact str: the pieces of the unfinished line */
    Py_ssize_t tail_size;
    /* The spec's buffers: data lines (a list of exact str), the len of the data buffer without
     * its final LF (-1: empty), the event type, the block's own id (None: none), the last
     * event ID buffer and the last event ID string. */
    PyObject *data;
    Py_ssize_t data_size;
    PyObject *event_type, *own_id, *id_buffer, *last_event_id;
} Scanner;

/* --- items --------------------------------------------------------------------------------- */

/* Set a record's field through the class's descriptor (descr.__set__(obj, value)). */
static inline int
set_field(PyObject *descr, PyObject *obj, PyObject *value)
{
    return Py_TYPE(descr)->tp_descr_set(descr, obj, value);
}

/* Event(data, event, id, last_event_id) without validation; steals `data`. */
static PyObject *
new_event(Scanner *s, PyObject *data, PyObject *event, PyObject *id, PyObject *last_event_id)
{
    if (data == NULL) {
        return NULL;
    }
    PyObject *obj = s->event_cls->tp_alloc(s->event_cls, 0); /* object.__new__(Event) */
    if (obj == NULL || set_field(s->set_data, obj, data) < 0
        || set_field(s->set_event, obj, event) < 0 || set_field(s->set_id, obj, id) < 0
        || set_field(s->set_leid, obj, last_event_id) < 0) {
        Py_XDECREF(obj);
        obj = NULL;
    }
    Py_DECREF(data);
    return obj;
}

/* A record of `cls` with its one field set through `descr`; steals `value`. */
static PyObject *
new_record1(PyTypeObject *cls, PyObject *descr, PyObject *value)
{
    if (value == NULL) {
        return NULL;
    }
    PyObject *obj = cls->tp_alloc(cls, 0); /* object.__new__(cls) */
    if (obj != NULL && set_field(descr, obj, value) < 0) {
        Py_CLEAR(obj);
    }
    Py_DECREF(value);
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

/* --- limits and retry ---------------------------------------------------------------------- */

/* A limit was crossed: empty the line and data buffers (a failed stream keeps nothing) and
 * raise LimitExceeded(limit, value, maximum[, items]) -- `out` NULL leaves items out. -1. */
static int
fail_limit(Scanner *s, PyObject *limit, Py_ssize_t value, PyObject *maximum, PyObject *out)
{
    PyObject *empty_tail = PyList_New(0), *empty_data = PyList_New(0);
    if (empty_tail == NULL || empty_data == NULL) {
        Py_XDECREF(empty_tail);
        Py_XDECREF(empty_data);
        return -1;
    }
    Py_SETREF(s->tail, empty_tail);
    Py_SETREF(s->data, empty_data);
    PyObject *number = PyLong_FromSsize_t(value);
    if (number == NULL) {
        return -1;
    }
    PyObject *error = PyObject_CallFunctionObjArgs(s->limit_error, limit, number, maximum, out,
                                                   NULL);
    Py_DECREF(number);
    if (error != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(error), error);
        Py_DECREF(error);
    }
    return -1;
}

/* "If the field name is "retry"": if the value is only ASCII digits (at least one), append a
 * Retry of that many milliseconds; more than 18 significant digits report
 * MAX_RETRY_MILLISECONDS, as in the Python code. */
static int
field_retry(Scanner *s, const Text *t, Py_ssize_t start, Py_ssize_t end, PyObject *out)
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
    return append_new(out, new_record1(s->retry_cls, s->set_ms, PyLong_FromLongLong(value)));
}


/* _Scanner._process(complete[:n], out): 0, or -1 with an exception set. With `has_cr`, lines
 * may also end in CR or CRLF (feed passes text with CRs as it is, rather than a copy with
 * every line ending made LF); `complete[:n]` then ends with CR or LF. */
static int
process_lines(Scanner *s, PyObject *complete, Py_ssize_t n, int has_cr, PyObject *out)
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
    PyObject *committed = NULL, *type_cache = NULL, *new_list = NULL;
    Spans spans;
    spans.items = spans.local;
    spans.len = 0;
    spans.cap = (Py_ssize_t)(sizeof(spans.local) / sizeof(spans.local[0]));

    /* The spec's buffers, in locals for the call (see the Python docstring). */
    PyObject *max_obj = s->max_event_obj;
    Py_ssize_t size = s->data_size, max_size = s->max_event;
    data = Py_NewRef(s->data);
    event_type = Py_NewRef(s->event_type);
    own_id = Py_NewRef(s->own_id);
    id_buffer = Py_NewRef(s->id_buffer);
    committed = Py_NewRef(s->last_event_id);
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
                    if (joined > max_size) {
                        fail_limit(s, s_max_event_size, joined, max_obj, out);
                        goto done;
                    }
                    if (append_new(out, new_event(s, join_data(t, NULL, &spans), s_message,
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
                if (append_new(out, new_event(s, join_data(t, prefix, &spans), type, own_id,
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
            if (append_new(out, new_record1(s->comment_cls, s->set_text,
                                                PyUnicode_Substring(complete, pos + 1, eol))) < 0) {
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
                if (size > max_size) {
                    fail_limit(s, s_max_event_size, size, max_obj, out);
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
                if (field_retry(s, t, value, eol, out) < 0) {
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
    Py_SETREF(s->data, Py_NewRef(target));
    s->data_size = size;
    Py_SETREF(s->event_type, Py_NewRef(event_type));
    Py_SETREF(s->own_id, Py_NewRef(own_id));
    Py_SETREF(s->id_buffer, Py_NewRef(id_buffer));
    Py_SETREF(s->last_event_id, Py_NewRef(committed));
    result = 0;

done:
    if (spans.items != spans.local) {
        PyMem_Free(spans.items);
    }
    Py_XDECREF(data);
    Py_XDECREF(new_list);
    Py_XDECREF(event_type);
    Py_XDECREF(own_id);
    Py_XDECREF(id_buffer);
    Py_XDECREF(committed);
    Py_XDECREF(type_cache);
    return result;
}

/* --- feed ---------------------------------------------------------------------------------- */

/* "UTF-8 decode" of the next chunk with replacement, keeping an incomplete character at the
 * end for the next chunk: what codecs' incremental UTF-8 decoder does (the Python scanner
 * uses it), with the undecoded bytes (at most three) held in the scanner. */
static PyObject *
decode_chunk(Scanner *s, PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        /* The Python decoder's error: it starts with bytes + data, which refuses anything
         * without a simple buffer with this TypeError. */
        PyErr_Format(PyExc_TypeError, "can't concat %.100s to bytes", Py_TYPE(data)->tp_name);
        return NULL;
    }
    const char *bytes = view.buf;
    Py_ssize_t len = view.len;
    char *joined = NULL;
    if (s->n_undecoded > 0) {
        joined = PyMem_Malloc((size_t)(s->n_undecoded + len) + 1);
        if (joined == NULL) {
            PyBuffer_Release(&view);
            return PyErr_NoMemory();
        }
        memcpy(joined, s->undecoded, (size_t)s->n_undecoded);
        memcpy(joined + s->n_undecoded, view.buf, (size_t)len);
        bytes = joined;
        len += s->n_undecoded;
    }
    Py_ssize_t consumed = len;
    PyObject *text = PyUnicode_DecodeUTF8Stateful(bytes, len, "replace", &consumed);
    if (text != NULL) {
        Py_ssize_t left = len - consumed;
        if (left < 0 || left >= (Py_ssize_t)sizeof(s->undecoded)) {
            /* An incomplete UTF-8 sequence is at most three bytes. */
            PyErr_SetString(PyExc_SystemError, "UTF-8 decoder kept more than three bytes");
            Py_CLEAR(text);
        }
        else {
            memcpy(s->undecoded, bytes + consumed, (size_t)left);
            s->n_undecoded = (int)left;
        }
    }
    PyMem_Free(joined);
    PyBuffer_Release(&view);
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

/* "".join(tail + [text[:len]]): the pieces of the unfinished line (exact str, put there by
 * feed) and the text's whole lines, copied once into a str of the widest kind among them (the
 * Python code copies the text's lines out first, then joins). The result is only read by
 * process_lines, which makes every str it hands out canonical (PyUnicode_Substring,
 * join_data); it may hold characters of a narrower kind than its own. */
static PyObject *
join_tail(PyObject *tail, PyObject *text, Py_ssize_t len)
{
    Py_ssize_t n_pieces = PyList_GET_SIZE(tail), total = len;
    Py_UCS4 top = PyUnicode_MAX_CHAR_VALUE(text);
    for (Py_ssize_t i = 0; i < n_pieces; i++) {
        PyObject *piece = PyList_GET_ITEM(tail, i);
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

/* scanner.feed(data): _Scanner.feed of sse_core/_parser.py, step by step (decoder, BOM, CR
 * at the end of the previous chunk, the unfinished-line tail, max_line_length), with
 * process_lines for the whole lines. Returns the list of items. */
static PyObject *
scanner_feed(Scanner *s, PyObject *data)
{
    PyObject *result = NULL, *text = NULL, *complete = NULL, *rest = NULL, *out = NULL;
    PyObject *max_obj = s->max_line_obj;
    Py_ssize_t max_line = s->max_line;
    text = decode_chunk(s, data);
    if (text == NULL) {
        return NULL;
    }
    if (PyUnicode_GET_LENGTH(text) == 0) {
        goto empty;
    }
    /* "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order Mark (BOM)". */
    if (s->is_at_start) {
        s->is_at_start = 0;
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
    if (s->pending_lf) {
        s->pending_lf = 0;
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
    if (has_cr) {
        s->pending_lf = PyUnicode_READ_CHAR(text, n - 1) == '\r';
    }
    Py_ssize_t end = rfind_eol(text, has_cr);
    if (end < 0) {
        /* No line ends in this chunk: keep the piece until one does. */
        Py_ssize_t size = s->tail_size + n;
        if (size > max_line) {
            fail_limit(s, s_max_line_length, size, max_obj, NULL);
            goto done;
        }
        if (PyList_Append(s->tail, text) < 0) {
            goto done;
        }
        s->tail_size = size;
        goto empty;
    }
    /* `complete[:complete_len]` holds the whole lines: the text itself when no line was
     * pending (no copy), else the pieces of the pending line joined with the text's lines. */
    Py_ssize_t complete_len = end + 1;
    if (PyList_GET_SIZE(s->tail) > 0) {
        complete = join_tail(s->tail, text, end + 1);
        if (complete == NULL) {
            goto done;
        }
        complete_len = PyUnicode_GET_LENGTH(complete);
    }
    else {
        complete = Py_NewRef(text);
    }
    if ((rest = PyUnicode_Substring(text, end + 1, n)) == NULL) {
        goto done;
    }
    {
        Py_ssize_t rest_len = PyUnicode_GET_LENGTH(rest);
        PyObject *new_tail = PyList_New(rest_len ? 1 : 0);
        if (new_tail == NULL) {
            goto done;
        }
        if (rest_len) {
            PyList_SET_ITEM(new_tail, 0, Py_NewRef(rest));
        }
        Py_SETREF(s->tail, new_tail);
        s->tail_size = rest_len;
        if ((out = PyList_New(0)) == NULL) {
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
                if (process_lines(s, complete, offset, has_cr, out) == 0) {
                    fail_limit(s, s_max_line_length, stop - offset, max_obj, out);
                }
                goto done;
            }
            offset = next;
        }
    }
    if (process_lines(s, complete, complete_len, has_cr, out) < 0) {
        goto done;
    }
    if (PyUnicode_GET_LENGTH(rest) > max_line) {
        fail_limit(s, s_max_line_length, PyUnicode_GET_LENGTH(rest), max_obj, out);
        goto done;
    }
    result = out;
    out = NULL;
    goto done;
empty:
    result = PyList_New(0);
done:
    Py_XDECREF(text);
    Py_XDECREF(complete);
    Py_XDECREF(rest);
    Py_XDECREF(out);
    return result;
}


/* --- the Scanner type ---------------------------------------------------------------------- */

/* The class's data descriptor for a public field name (what `cls.name` gives for a slot). */
static PyObject *
field_descriptor(PyTypeObject *cls, PyObject *name)
{
    PyObject *descr = PyObject_GetAttr((PyObject *)cls, name);
    if (descr != NULL && Py_TYPE(descr)->tp_descr_set == NULL) {
        PyErr_Format(PyExc_TypeError, "%s.%U is not a data descriptor", cls->tp_name, name);
        Py_CLEAR(descr);
    }
    return descr;
}

static PyObject *
scanner_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *max_line_obj, *max_event_obj, *last_event_id, *limit_error;
    PyTypeObject *event_cls, *comment_cls, *retry_cls;
    if ((kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0)
        || !PyArg_ParseTuple(args, "O!O!UO!O!O!O:Scanner", &PyLong_Type, &max_line_obj,
                             &PyLong_Type, &max_event_obj, &last_event_id, &PyType_Type,
                             &event_cls, &PyType_Type, &comment_cls, &PyType_Type, &retry_cls,
                             &limit_error)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "Scanner() takes positional arguments only");
        }
        return NULL;
    }
    PyTypeObject *classes[3] = {event_cls, comment_cls, retry_cls};
    for (int i = 0; i < 3; i++) {
        if (classes[i]->tp_flags & Py_TPFLAGS_IS_ABSTRACT) {
            PyErr_Format(PyExc_TypeError, "%s is abstract", classes[i]->tp_name);
            return NULL;
        }
    }
    Scanner *s = (Scanner *)type->tp_alloc(type, 0);
    if (s == NULL) {
        return NULL;
    }
    s->max_line_obj = Py_NewRef(max_line_obj);
    s->max_event_obj = Py_NewRef(max_event_obj);
    s->event_cls = (PyTypeObject *)Py_NewRef(event_cls);
    s->comment_cls = (PyTypeObject *)Py_NewRef(comment_cls);
    s->retry_cls = (PyTypeObject *)Py_NewRef(retry_cls);
    s->limit_error = Py_NewRef(limit_error);
    s->is_at_start = 1;
    s->data_size = -1;
    s->event_type = Py_NewRef(s_empty);
    s->own_id = Py_NewRef(Py_None);
    s->id_buffer = Py_NewRef(last_event_id);
    s->last_event_id = Py_NewRef(last_event_id);
    if (get_ssize(max_line_obj, &s->max_line) < 0 || get_ssize(max_event_obj, &s->max_event) < 0
        || (s->tail = PyList_New(0)) == NULL || (s->data = PyList_New(0)) == NULL
        || (s->set_data = field_descriptor(event_cls, s_data)) == NULL
        || (s->set_event = field_descriptor(event_cls, s_event)) == NULL
        || (s->set_id = field_descriptor(event_cls, s_id)) == NULL
        || (s->set_leid = field_descriptor(event_cls, s_last_event_id)) == NULL
        || (s->set_text = field_descriptor(comment_cls, s_text)) == NULL
        || (s->set_ms = field_descriptor(retry_cls, s_milliseconds)) == NULL) {
        Py_DECREF(s);
        return NULL;
    }
    return (PyObject *)s;
}

static int
scanner_traverse(Scanner *s, visitproc visit, void *arg)
{
    Py_VISIT(s->event_cls);
    Py_VISIT(s->comment_cls);
    Py_VISIT(s->retry_cls);
    Py_VISIT(s->set_data);
    Py_VISIT(s->set_event);
    Py_VISIT(s->set_id);
    Py_VISIT(s->set_leid);
    Py_VISIT(s->set_text);
    Py_VISIT(s->set_ms);
    Py_VISIT(s->limit_error);
    Py_VISIT(s->tail);
    Py_VISIT(s->data);
    Py_VISIT(s->max_line_obj);
    Py_VISIT(s->max_event_obj);
    Py_VISIT(s->event_type);
    Py_VISIT(s->own_id);
    Py_VISIT(s->id_buffer);
    Py_VISIT(s->last_event_id);
    return 0;
}

static int
scanner_clear(Scanner *s)
{
    Py_CLEAR(s->max_line_obj);
    Py_CLEAR(s->max_event_obj);
    Py_CLEAR(s->event_cls);
    Py_CLEAR(s->comment_cls);
    Py_CLEAR(s->retry_cls);
    Py_CLEAR(s->set_data);
    Py_CLEAR(s->set_event);
    Py_CLEAR(s->set_id);
    Py_CLEAR(s->set_leid);
    Py_CLEAR(s->set_text);
    Py_CLEAR(s->set_ms);
    Py_CLEAR(s->limit_error);
    Py_CLEAR(s->tail);
    Py_CLEAR(s->data);
    Py_CLEAR(s->event_type);
    Py_CLEAR(s->own_id);
    Py_CLEAR(s->id_buffer);
    Py_CLEAR(s->last_event_id);
    return 0;
}

static void
scanner_dealloc(Scanner *s)
{
    PyObject_GC_UnTrack(s);
    scanner_clear(s);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

/* A method: feed is the hot one. The scanner's lists are only ever touched here, so the
 * checks below hold for the life of the object; tp_clear may have emptied them during a
 * collection of a cycle, after which the object is no longer usable. */
static int
scanner_usable(Scanner *s)
{
    if (s->tail == NULL || s->data == NULL || s->event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the scanner was cleared");
        return 0;
    }
    return 1;
}

static PyObject *
scanner_feed_method(Scanner *s, PyObject *data)
{
    return scanner_usable(s) ? scanner_feed(s, data) : NULL;
}

/* scanner.end(): the end of the stream. Whether an event was cut short (an unterminated line,
 * undecoded bytes, or data, event or id fields not dispatched); empties the line and data
 * buffers ("any pending data must be discarded"). */
static PyObject *
scanner_end(Scanner *s, PyObject *Py_UNUSED(unused))
{
    if (!scanner_usable(s)) {
        return NULL;
    }
    int is_truncated = PyList_GET_SIZE(s->tail) > 0 || s->n_undecoded > 0
                       || PyList_GET_SIZE(s->data) > 0
                       || PyUnicode_GET_LENGTH(s->event_type) > 0 || s->own_id != Py_None;
    PyObject *empty_tail = PyList_New(0), *empty_data = PyList_New(0);
    if (empty_tail == NULL || empty_data == NULL) {
        Py_XDECREF(empty_tail);
        Py_XDECREF(empty_data);
        return NULL;
    }
    Py_SETREF(s->tail, empty_tail);
    Py_SETREF(s->data, empty_data);
    return PyBool_FromLong(is_truncated);
}

static PyMethodDef scanner_methods[] = {
    {"feed", (PyCFunction)scanner_feed_method, METH_O,
     "feed(data, /)\n--\n\n"
     "Parse the next chunk (bytes-like); return the items it completed.\n\n"
     "Raises the LimitExceeded class given to the constructor when a limit is crossed, after\n"
     "emptying the line and data buffers; the scanner must not be fed after that."},
    {"end", (PyCFunction)scanner_end, METH_NOARGS,
     "end($self, /)\n--\n\n"
     "End of stream: whether an event was cut short; empties the line and data buffers."},
    {NULL, NULL, 0, NULL},
};

/* Read-only views of the state, for tests and debugging: the same names and values as the
 * Python scanner's (lists are copies: the scanner's own lists stay private). */
static PyObject *
scanner_get(Scanner *s, void *closure)
{
    if (!scanner_usable(s)) {
        return NULL;
    }
    switch ((int)(Py_intptr_t)closure) {
    case 0:
        return PyList_GetSlice(s->data, 0, PyList_GET_SIZE(s->data));
    case 1:
        return PyLong_FromSsize_t(s->data_size);
    case 2:
        return Py_NewRef(s->event_type);
    case 3:
        return Py_NewRef(s->own_id);
    case 4:
        return Py_NewRef(s->id_buffer);
    case 5:
        return Py_NewRef(s->last_event_id);
    case 6:
        return PyList_GetSlice(s->tail, 0, PyList_GET_SIZE(s->tail));
    case 7:
        return PyLong_FromSsize_t(s->tail_size);
    case 8:
        return PyBool_FromLong(s->pending_lf);
    case 9:
        return PyBool_FromLong(s->is_at_start);
    default:
        return PyBytes_FromStringAndSize((const char *)s->undecoded, s->n_undecoded);
    }
}

#define GETTER(name, index, doc) \
    {name, (getter)scanner_get, NULL, doc, (void *)(Py_intptr_t)(index)}

static PyGetSetDef scanner_getset[] = {
    GETTER("data", 0, "The data buffer's lines not yet dispatched (a copy)."),
    GETTER("data_size", 1, "The data buffer's length without its final LF (-1: empty)."),
    GETTER("event_type", 2, "The event type buffer."),
    GETTER("own_id", 3, "The current block's own id field, or None."),
    GETTER("id_buffer", 4, "The last event ID buffer."),
    GETTER("last_event_id", 5, "The last event ID string (set at each dispatch)."),
    GETTER("tail", 6, "The pieces of the unfinished line (a copy)."),
    GETTER("tail_size", 7, "The unfinished line's length."),
    GETTER("pending_lf", 8, "Whether the last character seen was CR."),
    GETTER("is_at_start", 9, "Whether no character was decoded yet (a BOM may come)."),
    GETTER("undecoded", 10, "The bytes of a character split across chunks."),
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sse_core._speedups.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Scanner(max_line_length, max_event_size, last_event_id, Event, Comment, Retry,"
              " LimitExceeded, /)\n--\n\n"
              "The parse state of one text/event-stream and the C scan over it: the same\n"
              "behaviour as sse_core._parser._Scanner, its specification.",
    .tp_new = scanner_new,
    .tp_dealloc = (destructor)scanner_dealloc,
    .tp_traverse = (traverseproc)scanner_traverse,
    .tp_clear = (inquiry)scanner_clear,
    .tp_methods = scanner_methods,
    .tp_getset = scanner_getset,
};

/* --- the serializer ------------------------------------------------------------------------ */

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

/* write_event(data, event, id, retry): the bytes of the event when it is the common valid
 * case -- data an exact str; event None or an exact str, not empty, without CR or LF
 * ("message" writes no event line); id None or an exact str without CR, LF or U+0000; retry
 * None or an exact int from 0 up to a long long; no lone surrogate -- else None, and the
 * Python caller does the rest (sse_core/_serializer.py is the specification). */
static PyObject *
write_event_entry(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "write_event() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *data = args[0], *event = args[1], *id = args[2], *retry_obj = args[3];
    if (!PyUnicode_CheckExact(data)) {
        Py_RETURN_NONE;
    }
#if PY_VERSION_HEX < 0x030C0000
    if ((PyUnicode_CheckExact(event) && PyUnicode_READY(event) < 0)
        || (PyUnicode_CheckExact(id) && PyUnicode_READY(id) < 0)) {
        return NULL;
    }
#endif
    if (event != Py_None) {
        if (!PyUnicode_CheckExact(event)) {
            Py_RETURN_NONE;
        }
        if (is_message(event)) {
            event = Py_None;
        }
        else if (PyUnicode_GET_LENGTH(event) == 0 || has_break_or_nul(event, 0)) {
            Py_RETURN_NONE;
        }
    }
    if (id != Py_None && (!PyUnicode_CheckExact(id) || has_break_or_nul(id, 1))) {
        Py_RETURN_NONE;
    }
    long long retry = -1;
    if (retry_obj != Py_None) {
        if (!PyLong_CheckExact(retry_obj)) {
            Py_RETURN_NONE;
        }
        int overflow;
        retry = PyLong_AsLongLongAndOverflow(retry_obj, &overflow);
        if (overflow || retry < 0) {
            Py_RETURN_NONE; /* negative (refused) or beyond a long long (written by Python) */
        }
    }
    PyObject *result = write_event(data, event == Py_None ? NULL : event,
                                   id == Py_None ? NULL : id, retry);
    if (result != NULL || PyErr_Occurred()) {
        return result;
    }
    Py_RETURN_NONE; /* a lone surrogate: Python raises the error */
}

/* --- EventInit ----------------------------------------------------------------------------- */

/* EventInit(init) wraps the pure-Python Event.__init__ `init` (its specification, kept as
 * __wrapped__). Used as the class's __init__, a call with only the keywords data, event, id and
 * last_event_id, exact str values (id may be None), an event type that is not empty and has no
 * CR or LF, and ids without CR, LF or U+0000, on an instance of the class whose own __init__ it
 * is, stores the fields as the Python method does; any other call (positional arguments,
 * unknown, missing or repeated keywords, other types, str subclasses, invalid values,
 * subclasses) is init's own, so every error is the Python one by construction.
 *
 * It is a method descriptor (Py_TPFLAGS_METHOD_DESCRIPTOR): type.__call__ calls it with the
 * instance first and no bound method in between, as it calls a function. */

typedef struct {
    PyObject_HEAD
    PyObject *init; /* the Python method */
    vectorcallfunc vectorcall;
    /* The class that holds this as its __init__ and the descriptors of its fields data,
     * event, id, last_event_id (set by __set_name__; NULL: no fast path). */
    PyTypeObject *owner;
    PyObject *fields[4];
} EventInit;

static PyObject *event_init_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                       PyObject *kwnames);
static PyTypeObject EventInitType;

static PyObject *
event_init_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *init;
    if ((kwargs != NULL && PyDict_GET_SIZE(kwargs) > 0)
        || !PyArg_ParseTuple(args, "O:EventInit", &init)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "EventInit() takes one positional argument");
        }
        return NULL;
    }
    if (!PyCallable_Check(init)) {
        PyErr_SetString(PyExc_TypeError, "EventInit() needs the Python __init__ to wrap");
        return NULL;
    }
    EventInit *e = (EventInit *)type->tp_alloc(type, 0);
    if (e != NULL) {
        e->init = Py_NewRef(init);
        e->vectorcall = event_init_vectorcall;
    }
    return (PyObject *)e;
}

static int
event_init_traverse(EventInit *e, visitproc visit, void *arg)
{
    Py_VISIT(e->init);
    Py_VISIT(e->owner);
    for (int i = 0; i < 4; i++) {
        Py_VISIT(e->fields[i]);
    }
    return 0;
}

static int
event_init_clear(EventInit *e)
{
    Py_CLEAR(e->init);
    Py_CLEAR(e->owner);
    for (int i = 0; i < 4; i++) {
        Py_CLEAR(e->fields[i]);
    }
    return 0;
}

static void
event_init_dealloc(EventInit *e)
{
    PyObject_GC_UnTrack(e);
    event_init_clear(e);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

/* The keyword's index among data, event, id, last_event_id, or -1. */
static int
keyword_index(PyObject *name)
{
    PyObject *names[4] = {s_data, s_event, s_id, s_last_event_id};
    for (int i = 0; i < 4; i++) {
        if (name == names[i]) {
            return i;
        }
    }
    if (!PyUnicode_CheckExact(name)) {
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        if (PyUnicode_Compare(name, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Store the fields of the common valid call Event(data=..., event=..., id=..., last_event_id=...)
 * on an instance of e->owner -- `args` holds the nargs positional arguments then the keyword
 * values -- as the Python method does: 1 when stored, 0 when the call is not that case
 * (nothing is done), -1 on error. */
static int
event_init_fast(EventInit *e, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    if (nargs != 0 || kwnames == NULL || e->owner == NULL || Py_TYPE(self) != e->owner) {
        return 0;
    }
    PyObject *values[4] = {NULL, s_message, Py_None, s_empty};
    unsigned seen = 0;
    Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nkw; i++) {
        int index = keyword_index(PyTuple_GET_ITEM(kwnames, i));
        if (index < 0 || (seen & (1u << index))) {
            return 0;
        }
        seen |= 1u << index;
        values[index] = args[i];
    }
    PyObject *data = values[0], *event = values[1], *id = values[2], *leid = values[3];
    if (data == NULL || !PyUnicode_CheckExact(data) || !PyUnicode_CheckExact(event)
        || !PyUnicode_CheckExact(leid) || (id != Py_None && !PyUnicode_CheckExact(id))) {
        return 0;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(event) < 0 || PyUnicode_READY(leid) < 0
        || (id != Py_None && PyUnicode_READY(id) < 0)) {
        return -1;
    }
#endif
    if (event != s_message
        && (PyUnicode_GET_LENGTH(event) == 0 || has_break_or_nul(event, 0))) {
        return 0;
    }
    if ((id != Py_None && has_break_or_nul(id, 1)) || has_break_or_nul(leid, 1)) {
        return 0;
    }
    /* The class's descriptor for each field, as the Python method's setters
     * (Event.__dict__["data"].__set__ and so on). */
    if (set_field(e->fields[0], self, data) < 0 || set_field(e->fields[1], self, event) < 0
        || set_field(e->fields[2], self, id) < 0 || set_field(e->fields[3], self, leid) < 0) {
        return -1;
    }
    return 1;
}

/* The EventInit that is the class's own __init__ (not inherited), or NULL (no exception). */
static EventInit *
own_event_init(PyTypeObject *type)
{
    PyObject *init = PyDict_GetItemWithError(type->tp_dict, s_init);
    return init != NULL && Py_IS_TYPE(init, &EventInitType) ? (EventInit *)init : NULL;
}

/* Called as __init__(self, ...): the fast case on an instance of the class it was set on
 * (a subclass may store its fields differently), else the Python method. */
static PyObject *
event_init_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                      PyObject *kwnames)
{
    EventInit *e = (EventInit *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (e->init == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "EventInit was cleared");
        return NULL;
    }
    if (nargs >= 1) {
        int rc = event_init_fast(e, args[0], args + 1, nargs - 1, kwnames);
        if (rc != 0) {
            return rc < 0 ? NULL : Py_NewRef(Py_None);
        }
    }
    return PyObject_Vectorcall(e->init, args, nargsf, kwnames);
}

/* --- calling the class ---------------------------------------------------------------------- */

/* Calling a class goes through type.__call__: the keyword arguments are packed into a dict for
 * object.__new__ and for __init__, which unpacks it again -- about 250 ns, more than the rest of
 * serialize(Event(...)). EventInit.__set_name__, which Python calls when a class is created
 * with an EventInit as its __init__, gives that class this vectorcall (a class's own; its
 * subclasses do not inherit it): while the class's own __init__ is an EventInit and its
 * __new__ is object.__new__, it does what type.__call__ does -- allocate as object.__new__,
 * then __init__, whose result must be None -- straight from the caller's arguments. Anything
 * else (__init__ or __new__ replaced, an abstract class) is type.__call__ itself. */

/* type.__call__(cls, *args, **kwargs) from a vectorcall's arguments. */
static PyObject *
type_call_generic(PyObject *cls, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *tuple = PyTuple_New(nargs), *kwargs = NULL, *result = NULL;
    if (tuple == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
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

/* The last class found plain, its EventInit and the class's version tag then (CPython gives a
 * class a new tag whenever one of its attributes is set, and never reuses one). */
static PyTypeObject *plain_type;
static EventInit *plain_init;
static unsigned int plain_tag;

/* The EventInit to call for `type` when calling it can skip type.__call__: its own __init__
 * is an EventInit set on it and its __new__ is object.__new__. NULL otherwise (with an
 * exception on error). */
static EventInit *
plain_event_init(PyTypeObject *type)
{
    EventInit *e = NULL;
    if (type == plain_type && type->tp_version_tag != 0 && type->tp_version_tag == plain_tag) {
        e = plain_init;
    }
    else if (type->tp_new == PyBaseObject_Type.tp_new
             && !(type->tp_flags & Py_TPFLAGS_IS_ABSTRACT)) {
        e = own_event_init(type);
        /* Looking an attribute up gives the class a version tag if it has none. */
        PyObject *init = e == NULL ? NULL : PyObject_GetAttr((PyObject *)type, s_init);
        if (init != (PyObject *)e) {
            e = NULL;
        }
        Py_XDECREF(init);
        if (e != NULL && type->tp_version_tag != 0) {
            plain_type = type;
            plain_init = e;
            plain_tag = type->tp_version_tag;
        }
    }
    return e != NULL && e->owner == type && e->init != NULL ? e : NULL;
}

static PyObject *
class_vectorcall(PyObject *cls, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyTypeObject *type = (PyTypeObject *)cls;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    EventInit *e = plain_event_init(type);
    if (e == NULL) {
        return PyErr_Occurred() ? NULL : type_call_generic(cls, args, nargs, kwnames);
    }
    PyObject *self = type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    int rc = event_init_fast(e, self, args, nargs, kwnames);
    if (rc == 0) {
        PyObject *result = call_with_self(e->init, self, args, nargs, kwnames);
        if (result == NULL) {
            rc = -1;
        }
        else if (result != Py_None) {
            PyErr_Format(PyExc_TypeError, "__init__() should return None, not '%.200s'",
                         Py_TYPE(result)->tp_name);
            rc = -1;
        }
        Py_XDECREF(result);
    }
    if (rc < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

/* EventInit.__set_name__(owner, name): Python calls it when it creates a class that holds this
 * object. As the __init__ of a class made by `type` itself (not a metaclass, whose call may
 * differ) whose fields data, event, id and last_event_id are data descriptors, this remembers
 * the class and the descriptors (the fast path's only class) and gives the class its direct
 * call path (see "calling the class" above). Otherwise -- attrs first makes a class without
 * the slots, then the real one -- it does nothing. */
static PyObject *
event_init_set_name(EventInit *e, PyObject *args)
{
    PyObject *owner, *name;
    if (!PyArg_ParseTuple(args, "OO:__set_name__", &owner, &name)) {
        return NULL;
    }
    if (!Py_IS_TYPE(owner, &PyType_Type) || !PyUnicode_Check(name)
        || PyUnicode_Compare(name, s_init) != 0) {
        Py_RETURN_NONE;
    }
    PyObject *names[4] = {s_data, s_event, s_id, s_last_event_id}, *fields[4] = {NULL};
    for (int i = 0; i < 4; i++) {
        fields[i] = field_descriptor((PyTypeObject *)owner, names[i]);
        if (fields[i] == NULL) {
            PyErr_Clear();
            for (int j = 0; j < i; j++) {
                Py_DECREF(fields[j]);
            }
            Py_RETURN_NONE;
        }
    }
    Py_XSETREF(e->owner, (PyTypeObject *)Py_NewRef(owner));
    for (int i = 0; i < 4; i++) {
        Py_XSETREF(e->fields[i], fields[i]);
    }
    ((PyTypeObject *)owner)->tp_vectorcall = class_vectorcall;
    Py_RETURN_NONE;
}

static PyMethodDef event_init_methods[] = {
    {"__set_name__", (PyCFunction)event_init_set_name, METH_VARARGS,
     "__set_name__($self, owner, name, /)\n--\n\n"
     "Called when a class is created with this as its __init__: calling that class then\n"
     "skips type.__call__ while its __init__ and __new__ stay as they are."},
    {NULL, NULL, 0, NULL},
};

/* EventInit is a descriptor like a function: looked up on an instance it gives a bound
 * method; on the class, itself. */
static PyObject *
event_init_get(PyObject *self, PyObject *obj, PyObject *Py_UNUSED(type))
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

static PyObject *
event_init_wrapped(EventInit *e, void *Py_UNUSED(closure))
{
    if (e->init == NULL) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(e->init);
}

static PyGetSetDef event_init_getset[] = {
    {"__wrapped__", (getter)event_init_wrapped, NULL, "The Python __init__ (specification).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject EventInitType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sse_core._speedups.EventInit",
    .tp_basicsize = sizeof(EventInit),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
                | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "EventInit(init, /)\n--\n\n"
              "Event.__init__ in C for the common valid call; any other call is ``init``'s\n"
              "(the pure-Python method, kept as __wrapped__).",
    .tp_new = event_init_new,
    .tp_dealloc = (destructor)event_init_dealloc,
    .tp_traverse = (traverseproc)event_init_traverse,
    .tp_clear = (inquiry)event_init_clear,
    .tp_vectorcall_offset = offsetof(EventInit, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = event_init_get,
    .tp_getset = event_init_getset,
    .tp_methods = event_init_methods,
};

/* --- module -------------------------------------------------------------------------------- */

static PyMethodDef module_functions[] = {
    {"write_event", (PyCFunction)(void (*)(void))write_event_entry, METH_FASTCALL,
     "write_event(data, event, id, retry, /)\n--\n\n"
     "The UTF-8 bytes of an event for the common valid values (see sse_core/_speedups.c),\n"
     "else None: the caller then does what sse_core.serialize_event does."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "sse_core._speedups",
    "Optional C accelerator for sse_core (floor 1): Scanner (the parse state of one stream and "
    "the scan over it; sse_core._parser._Scanner is its specification), write_event (the "
    "common case of sse_core/_serializer.py) and EventInit (Event.__init__'s common case). "
    "See the comment at the top of _speedups.c for the boundary.",
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
        {&s_max_line_length, "max_line_length"},
        {&s_data, "data"},
        {&s_event, "event"},
        {&s_id, "id"},
        {&s_last_event_id, "last_event_id"},
        {&s_text, "text"},
        {&s_milliseconds, "milliseconds"},
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
    if (PyType_Ready(&ScannerType) < 0 || PyType_Ready(&EventInitType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Scanner", (PyObject *)&ScannerType) < 0
        || PyModule_AddObjectRef(module, "EventInit", (PyObject *)&EventInitType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
