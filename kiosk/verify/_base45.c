/*
 * kiosk.verify._base45: the compiled Base45 (RFC 9285) decoder.
 *
 * Why C: Base45 is the largest piece of pure-Python work on the per-scan hot
 * path (~3 us of ~15 us for a 600-character QR, measured with
 * bench/verify.py); this loop takes ~0.3 us.  It is an optional accelerator:
 * kiosk/verify/base45.py keeps the pure-Python decoder as the reference, uses
 * this one when it was built, and tests/verify/test_base45.py plus the fuzz
 * target check that both give the same bytes or the same error on every input.
 *
 * Contract (identical to base45.py, messages included):
 *   decode(text: str) -> bytes
 *   - non-ASCII text                  -> Base45Error("non-ASCII character")
 *   - length 1 modulo 3               -> Base45Error("invalid length N (1 modulo 3)")
 *   - a character outside the alphabet -> Base45Error("character outside the Base45 alphabet")
 *   - a 3-character group > 0xFFFF    -> Base45Error("3-character group above 0xFFFF")
 *   - a final pair > 0xFF             -> Base45Error("final 2-character group above 0xFF")
 *   checked in that order of precedence; anything but str is a TypeError.
 *   bind(cls) sets the error class (kiosk.verify.base45 binds its Base45Error).
 * The input is read once, bounded by its length; the output is allocated once
 * at its exact size (2 bytes per 3 characters, 1 per final pair).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The error class: kiosk.verify.base45.Base45Error once bind() has run (the
 * Python module owns the type); plain ValueError before that. */
static PyObject *Base45Error;

/* Character -> digit value; 0xFF marks a character outside the alphabet. */
static unsigned char DIGITS[256];

static const char ALPHABET[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

static PyObject *
decode(PyObject *module, PyObject *text)
{
    (void)module;
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "decode() argument must be str, not %.100s",
                     Py_TYPE(text)->tp_name);
        return NULL;
    }
#if PY_VERSION_HEX < 0x030C0000
    /* Legacy (not yet "ready") strings exist before 3.12; the macros below need ready ones. */
    if (PyUnicode_READY(text) < 0)
        return NULL;
#endif
    if (!PyUnicode_IS_ASCII(text)) {
        PyErr_SetString(Base45Error, "non-ASCII character");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n % 3 == 1) {
        PyErr_Format(Base45Error, "invalid length %zd (1 modulo 3)", n);
        return NULL;
    }
    const unsigned char *in = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t groups = n / 3, tail = n % 3;
    PyObject *result = PyBytes_FromStringAndSize(NULL, groups * 2 + (tail ? 1 : 0));
    if (result == NULL)
        return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    unsigned int bad = 0;     /* OR of every digit: bit 0x80 set when any was 0xFF */
    unsigned int over = 0;    /* OR of every group value: above 0xFFFF when any was */
    for (Py_ssize_t g = 0; g < groups; g++, in += 3, out += 2) {
        unsigned int d0 = DIGITS[in[0]], d1 = DIGITS[in[1]], d2 = DIGITS[in[2]];
        unsigned int value = d0 + 45u * d1 + 2025u * d2;
        bad |= d0 | d1 | d2;
        over |= value;
        out[0] = (unsigned char)(value >> 8);
        out[1] = (unsigned char)value;
    }
    unsigned int last = 0;
    if (tail) {
        unsigned int d0 = DIGITS[in[0]], d1 = DIGITS[in[1]];
        bad |= d0 | d1;
        last = d0 + 45u * d1;
        out[0] = (unsigned char)last;
    }
    /* Same precedence as the Python decoder: alphabet, then groups, then the tail. */
    const char *error = NULL;
    if (bad & 0x80)
        error = "character outside the Base45 alphabet";
    else if (over > 0xFFFF)
        error = "3-character group above 0xFFFF";
    else if (last > 0xFF)
        error = "final 2-character group above 0xFF";
    if (error != NULL) {
        Py_DECREF(result);
        PyErr_SetString(Base45Error, error);
        return NULL;
    }
    return result;
}

static PyObject *
bind(PyObject *module, PyObject *cls)
{
    (void)module;
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls,
                                                (PyTypeObject *)PyExc_ValueError)) {
        PyErr_SetString(PyExc_TypeError, "bind() needs a subclass of ValueError");
        return NULL;
    }
    Py_INCREF(cls);
    Py_XSETREF(Base45Error, cls);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"bind", bind, METH_O, "bind(cls) -> None\n\nRaise ``cls`` (a ValueError subclass) on bad input."},
    {"decode", decode, METH_O,
     "decode(text: str) -> bytes\n\nDecode Base45 text; raises Base45Error on invalid input."},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *module)
{
    memset(DIGITS, 0xFF, sizeof DIGITS);
    for (unsigned int i = 0; ALPHABET[i] != '\0'; i++)
        DIGITS[(unsigned char)ALPHABET[i]] = (unsigned char)i;
    (void)module;
    if (Base45Error == NULL) {
        Py_INCREF(PyExc_ValueError);
        Base45Error = PyExc_ValueError;
    }
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kiosk.verify._base45",
    .m_doc = "Compiled Base45 decoder (optional accelerator of kiosk.verify.base45).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__base45(void)
{
    return PyModuleDef_Init(&moduledef);
}
