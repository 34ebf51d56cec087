/* record_cxx.cc - C++ operator new and delete in every form, each with its own size.
 *
 * By construction (trivial types, so no array cookies; -O0, so every new is
 * a call from main; C++17, so deletes of complete types are sized):
 *
 *   new Obj1101                       NEW 1101         delete: DELETE (sized)
 *   new char[1102]                    NEW_ARRAY 1102   delete[]: DELETE_ARRAY
 *   new (std::nothrow) Obj1103        NEW 1103         delete: DELETE
 *   new (std::nothrow) char[1104]     NEW_ARRAY 1104   delete[]: DELETE_ARRAY
 *   new Aligned1152 (alignas 64)      NEW 1152         delete: DELETE (sized, aligned)
 *   new Aligned1152[2]                NEW_ARRAY 2304   delete[]: DELETE_ARRAY (aligned)
 *   new (std::nothrow) Aligned1216    NEW 1216         delete: DELETE (aligned)
 *   operator new(1105)                NEW 1105         operator delete(p, 1105): DELETE
 *
 * No MALLOC event has any of these sizes: the library's operator new calls
 * malloc, which must not be recorded a second time. Prints one line and exits 0.
 */
#include <cstdio>
#include <new>

struct Obj1101 {
    char bytes[1101];
};

struct Obj1103 {
    char bytes[1103];
};

struct alignas(64) Aligned1152 {
    char bytes[1152];
};

struct alignas(64) Aligned1216 {
    char bytes[1216];
};

int main()
{
    Obj1101 *a = new Obj1101;
    char *b = new char[1102];
    Obj1103 *c = new (std::nothrow) Obj1103;
    char *d = new (std::nothrow) char[1104];
    Aligned1152 *e = new Aligned1152;
    Aligned1152 *f = new Aligned1152[2];
    Aligned1216 *g = new (std::nothrow) Aligned1216;
    void *h = operator new(1105);

    int ok = a && b && c && d && e && f && g && h && (reinterpret_cast<unsigned long>(e) & 63) == 0 &&
             (reinterpret_cast<unsigned long>(f) & 63) == 0 && (reinterpret_cast<unsigned long>(g) & 63) == 0;

    delete a;
    delete[] b;
    delete c;
    delete[] d;
    delete e;
    delete[] f;
    delete g;
    operator delete(h, static_cast<std::size_t>(1105));

    std::printf("record_cxx: %s\n", ok ? "all news behaved" : "FAILED");
    return ok ? 0 : 1;
}
