/* cxx_widgets.cc - leaks through `new`, so that reports charge the code that wrote it.
 *
 * By construction (-O0, so every call stays a call):
 *   make_widget() does `new Widget` (1301 bytes) three times; main deletes
 *   the first: 2 blocks, 2602 bytes leaked, charged to make_widget, not to
 *   operator new.
 *   make_label() does `new std::string(3000, 'x')` once and the pointer is
 *   dropped: the string object (32 bytes, through operator new) and its
 *   buffer (3001 bytes, allocated inside libstdc++) leak, both charged to
 *   make_label, not to std::string.
 * Prints one line and exits 0.
 */
#include <cstdio>
#include <string>

struct Widget {
    char bytes[1301];
};

static Widget *make_widget()
{
    return new Widget;
}

static std::string *make_label()
{
    return new std::string(3000, 'x');
}

int main()
{
    Widget *w[3];
    for (int i = 0; i < 3; i++)
        w[i] = make_widget();
    delete w[0];
    std::string *label = make_label();
    std::printf("cxx_widgets: label of %zu characters\n", label->size());
    return 0;
}
