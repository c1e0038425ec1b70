/*
 * kiosk._cbor: the compiled fast path of kiosk.cborsafe.loads.
 *
 * Why C: decoding the CWT claims is the largest piece of non-crypto work left
 * on the per-scan hot path: cborsafe.loads takes ~4.7 us for a 320-byte DCC
 * payload (cbor2's decoder ~3.5 us of it, the bounded-stream bookkeeping
 * around it the rest); this decoder builds the same objects in ~1.3 us
 * (docs/performance.md).  It is an optional accelerator: without a compiler
 * the install goes on and cborsafe uses cbor2 alone.
 *
 * Contract: loads(data: bytes, max_depth: int, text_keys: bool) -> object
 *   decodes exactly one CBOR item of the strict subset below and returns what
 *   cbor2 returns for it, or raises Unsupported (a ValueError) for anything
 *   else -- outside the subset, malformed, truncated, too deep, a duplicate
 *   map key, bytes after the item.  It never names a refusal itself: on
 *   Unsupported, cborsafe.loads runs cbor2 with the format's limits, which
 *   either decodes the item (e.g. an allowed date tag) or refuses it with
 *   cborsafe's own content-free message.  So this module only has to be
 *   exact where it succeeds, and tests/signing/test_cbor_fast.py checks that
 *   (hypothesis, against cbor2) together with the fuzz target.
 *
 * The subset: unsigned and negative integers (down to -2**63), byte and text
 * strings of definite length (text must be strict UTF-8), definite-length
 * arrays and maps, false, true, null, and half, single and double floats.
 * Map keys must be int, str or bytes (only str or bytes with text_keys),
 * all distinct.  No tags, no indefinite lengths, no other simple values.
 *
 * Bounds: every length is checked against the bytes left before anything is
 * allocated (an item takes at least one byte), so the output is O(input);
 * nesting deeper than max_depth (each array or map is one level) or than
 * HARD_MAX_DEPTH is refused, which bounds the recursion.
 *
 * split_sign1_tbs(data: bytes) -> (protected, payload, signature, tag, tbs) | None
 *   kiosk.verify.cose.split_sign1 (the hand parser of the usual HC1
 *   COSE_Sign1 shape, same result or None on every input) plus the
 *   Sig_structure of its parts (cose.sig_structure), in one pass: the next
 *   ~1 us of the scan path.  tests/verify/test_fast_paths.py checks it against
 *   the Python pair on generated and mutated envelopes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* C stack guard whatever a format's limit says: far above every Limits in use. */
#define HARD_MAX_DEPTH 200

static PyObject *Unsupported;

typedef struct {
    const unsigned char *pos;
    const unsigned char *end;
    int max_depth;
    int text_keys;
} Reader;

/* The argument of an item head with additional info `info` (< 28) into *arg; 0 or -1. */
static int
argument(Reader *r, unsigned int info, uint64_t *arg)
{
    if (info < 24) {
        *arg = info;
        return 0;
    }
    if (info > 27)  /* reserved, or indefinite length (31) */
        return -1;
    size_t size = (size_t)1 << (info - 24);
    if ((size_t)(r->end - r->pos) < size)
        return -1;
    uint64_t value = 0;
    for (size_t i = 0; i < size; i++)
        value = (value << 8) | r->pos[i];
    r->pos += size;
    *arg = value;
    return 0;
}

static PyObject *item(Reader *r, int depth);

static PyObject *
simple_or_float(Reader *r, unsigned int info)
{
    size_t left = (size_t)(r->end - r->pos);
    double value;
    switch (info) {
    case 20:
        Py_RETURN_FALSE;
    case 21:
        Py_RETURN_TRUE;
    case 22:
        Py_RETURN_NONE;
    case 25:
    case 26:
    case 27: {  /* half, single, double: 2, 4 or 8 big-endian bytes */
        size_t width = (size_t)1 << (info - 24);
        if (left < width)
            return NULL;
        const char *bytes = (const char *)r->pos;
        value = width == 2 ? PyFloat_Unpack2(bytes, 0)
              : width == 4 ? PyFloat_Unpack4(bytes, 0) : PyFloat_Unpack8(bytes, 0);
        r->pos += width;
        break;
    }
    default:  /* undefined, other simple values, reserved, break */
        return NULL;
    }
    if (value == -1.0 && PyErr_Occurred())
        return NULL;
    return PyFloat_FromDouble(value);
}

static int
key_allowed(const Reader *r, PyObject *key)
{
    if (PyUnicode_CheckExact(key) || PyBytes_CheckExact(key))
        return 1;
    return !r->text_keys && PyLong_CheckExact(key);  /* exact: never a bool */
}

static PyObject *
map(Reader *r, uint64_t pairs, int depth)
{
    /* A pair takes at least two bytes. */
    if (pairs > (uint64_t)(r->end - r->pos) / 2)
        return NULL;
    PyObject *result = PyDict_New();
    if (result == NULL)
        return NULL;
    for (uint64_t i = 0; i < pairs; i++) {
        PyObject *key = item(r, depth);
        if (key == NULL || !key_allowed(r, key)) {
            Py_XDECREF(key);
            goto fail;
        }
        PyObject *value = item(r, depth);
        if (value == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        Py_ssize_t before = PyDict_GET_SIZE(result);
        int status = PyDict_SetItem(result, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (status < 0 || PyDict_GET_SIZE(result) == before)  /* error, or a duplicate key */
            goto fail;
    }
    return result;
fail:
    Py_DECREF(result);
    return NULL;
}

static PyObject *
array(Reader *r, uint64_t count, int depth)
{
    if (count > (uint64_t)(r->end - r->pos))
        return NULL;
    PyObject *result = PyList_New((Py_ssize_t)count);
    if (result == NULL)
        return NULL;
    for (uint64_t i = 0; i < count; i++) {
        PyObject *value = item(r, depth);
        if (value == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(result, (Py_ssize_t)i, value);
    }
    return result;
}

/* One item at r->pos; NULL (with or without a Python error set) for "not handled". */
static PyObject *
item(Reader *r, int depth)
{
    if (r->pos >= r->end)
        return NULL;
    unsigned int head = *r->pos++;
    unsigned int major = head >> 5, info = head & 0x1F;
    if (major == 7)
        return simple_or_float(r, info);
    uint64_t arg;
    if (argument(r, info, &arg) < 0)
        return NULL;
    switch (major) {
    case 0:
        return PyLong_FromUnsignedLongLong(arg);
    case 1:
        if (arg > (uint64_t)INT64_MAX)
            return NULL;
        return PyLong_FromLongLong(-1 - (long long)arg);
    case 2:
    case 3: {
        if (arg > (uint64_t)(r->end - r->pos))
            return NULL;
        const char *start = (const char *)r->pos;
        r->pos += arg;
        if (major == 2)
            return PyBytes_FromStringAndSize(start, (Py_ssize_t)arg);
        return PyUnicode_DecodeUTF8(start, (Py_ssize_t)arg, "strict");
    }
    case 4:
    case 5:
        if (depth >= r->max_depth || depth >= HARD_MAX_DEPTH)
            return NULL;
        return major == 4 ? array(r, arg, depth + 1) : map(r, arg, depth + 1);
    default:  /* 6: tags are cbor2's (a format may allow the date tags) */
        return NULL;
    }
}

static PyObject *
loads(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "loads(data: bytes, max_depth: int, text_keys: bool)");
        return NULL;
    }
    long max_depth = PyLong_AsLong(args[1]);
    if (max_depth == -1 && PyErr_Occurred())
        return NULL;
    int text_keys = PyObject_IsTrue(args[2]);
    if (text_keys < 0)
        return NULL;
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Reader r = {data, data + PyBytes_GET_SIZE(args[0]),
                max_depth < 0 ? 0 : max_depth > HARD_MAX_DEPTH ? HARD_MAX_DEPTH : (int)max_depth,
                text_keys};
    PyObject *result = item(&r, 0);
    if (result != NULL && r.pos == r.end)
        return result;
    Py_XDECREF(result);
    /* Whatever went wrong (a UnicodeDecodeError, a MemoryError), cbor2 decides. */
    PyErr_Clear();
    PyErr_SetNone(Unsupported);
    return NULL;
}

/* [start, stop) of the definite-length byte string whose head is at pos; 0, or -1. */
static int
bstr_at(const unsigned char *data, size_t pos, size_t end, size_t *start, size_t *stop)
{
    if (pos >= end)
        return -1;
    unsigned int head = data[pos];
    uint64_t size;
    size_t first;
    if (head >= 0x40 && head < 0x58) {
        first = pos + 1;
        size = head - 0x40;
    } else if (head >= 0x58 && head <= 0x5B) {
        size_t width = (size_t)1 << (head - 0x58);
        if (width > end - pos - 1)
            return -1;
        size = 0;
        for (size_t i = 0; i < width; i++)
            size = (size << 8) | data[pos + 1 + i];
        first = pos + 1 + width;
    } else {
        return -1;
    }
    if (size > end - first)
        return -1;
    *start = first;
    *stop = first + (size_t)size;
    return 0;
}

/* The CBOR head of a byte string of n bytes (as cose._bstr_head) into out; its length. */
static size_t
bstr_head(size_t n, unsigned char *out)
{
    if (n < 24) {
        out[0] = (unsigned char)(0x40 | n);
        return 1;
    }
    if (n < 0x100) {
        out[0] = 0x58;
        out[1] = (unsigned char)n;
        return 2;
    }
    if (n < 0x10000) {
        out[0] = 0x59;
        out[1] = (unsigned char)(n >> 8);
        out[2] = (unsigned char)n;
        return 3;
    }
    out[0] = 0x5A;
    out[1] = (unsigned char)(n >> 24);
    out[2] = (unsigned char)(n >> 16);
    out[3] = (unsigned char)(n >> 8);
    out[4] = (unsigned char)n;
    return 5;
}

static const char TBS_HEAD[] = "\x84\x6aSignature1";

static PyObject *
split_sign1_tbs(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_CheckExact(arg)) {
        PyErr_SetString(PyExc_TypeError, "split_sign1_tbs(data: bytes)");
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(arg);
    size_t end = (size_t)PyBytes_GET_SIZE(arg), pos;
    long tag;
    if (end >= 2 && data[0] == 0xD2 && data[1] == 0x84) {
        pos = 2, tag = 18;
    } else if (end >= 1 && data[0] == 0x84) {
        pos = 1, tag = -1;
    } else if (end >= 4 && memcmp(data, "\xd8\x3d\xd2\x84", 4) == 0) {
        pos = 4, tag = 61;
    } else {
        Py_RETURN_NONE;
    }
    size_t p0, p1, y0, y1, s0, s1;
    if (bstr_at(data, pos, end, &p0, &p1) < 0 || p1 >= end || data[p1] != 0xA0)  /* A0: {} */
        Py_RETURN_NONE;
    if (bstr_at(data, p1 + 1, end, &y0, &y1) < 0)
        Py_RETURN_NONE;
    if (bstr_at(data, y1, end, &s0, &s1) < 0 || s1 != end)
        Py_RETURN_NONE;
    size_t np = p1 - p0, ny = y1 - y0;
    if (np > 0xFFFFFFFFu || ny > 0xFFFFFFFFu)  /* cose._bstr_head's range (never for HC1) */
        Py_RETURN_NONE;
    unsigned char head_p[5], head_y[5];
    size_t hp = bstr_head(np, head_p), hy = bstr_head(ny, head_y);
    size_t prefix = sizeof TBS_HEAD - 1;
    PyObject *tbs = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(prefix + hp + np + 1 + hy + ny));
    if (tbs == NULL)
        return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(tbs);
    memcpy(out, TBS_HEAD, prefix), out += prefix;
    memcpy(out, head_p, hp), out += hp;
    memcpy(out, data + p0, np), out += np;
    *out++ = 0x40;  /* empty external_aad */
    memcpy(out, head_y, hy), out += hy;
    memcpy(out, data + y0, ny);
    PyObject *tag_obj = tag < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(tag);
    if (tag_obj == NULL) {
        Py_DECREF(tbs);
        return NULL;
    }
    return Py_BuildValue("(y#y#y#NN)", (const char *)data + p0, (Py_ssize_t)np,
                         (const char *)data + y0, (Py_ssize_t)ny,
                         (const char *)data + s0, (Py_ssize_t)(s1 - s0), tag_obj, tbs);
}

static PyMethodDef methods[] = {
    {"loads", (PyCFunction)(void (*)(void))loads, METH_FASTCALL,
     "loads(data: bytes, max_depth: int, text_keys: bool) -> object\n\n"
     "Decode one CBOR item of the strict subset; raises Unsupported for anything else."},
    {"split_sign1_tbs", split_sign1_tbs, METH_O,
     "split_sign1_tbs(data: bytes) -> (protected, payload, signature, tag, tbs) | None\n\n"
     "kiosk.verify.cose.split_sign1 of the usual COSE_Sign1 shape plus its Sig_structure."},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *module)
{
    if (Unsupported == NULL) {
        Unsupported = PyErr_NewExceptionWithDoc(
            "kiosk._cbor.Unsupported",
            "Not decoded here: outside the strict subset, or not well-formed (cbor2 decides).",
            PyExc_ValueError, NULL);
        if (Unsupported == NULL)
            return -1;
    }
    Py_INCREF(Unsupported);
    if (PyModule_AddObject(module, "Unsupported", Unsupported) < 0) {
        Py_DECREF(Unsupported);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kiosk._cbor",
    .m_doc = "Compiled fast path of kiosk.cborsafe.loads (optional accelerator).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__cbor(void)
{
    return PyModuleDef_Init(&moduledef);
}
