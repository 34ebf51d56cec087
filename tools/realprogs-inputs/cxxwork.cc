// cxxwork.cc - a C++ program of ordinary standard-library work for tools/realprogs.
//
// Builds and rewrites containers of strings (std::map, std::unordered_map,
// std::vector, std::string, std::shared_ptr, std::function), so its heap
// traffic goes through operator new/delete of libstdc++. Deterministic: the
// same output and the same allocations on every run. Built with -O2 by
// `make realprogs`; not a test target.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

struct Record {
    std::string name;
    std::vector<int> values;
};

std::string word(unsigned n)
{
    std::string s;
    do {
        s.push_back(static_cast<char>('a' + n % 26));
        n /= 26;
    } while (n != 0);
    return s + "-" + std::to_string(n * 7 + s.size());
}

} // namespace

int main()
{
    std::map<std::string, std::shared_ptr<Record>> by_name;
    std::unordered_map<unsigned, std::string> index;
    std::vector<std::function<unsigned(unsigned)>> steps = {
        [](unsigned x) { return x * 2654435761u; },
        [](unsigned x) { return x ^ (x >> 13); },
    };

    unsigned x = 12345;
    for (unsigned i = 0; i < 30000; i++) {
        for (const auto &f : steps)
            x = f(x);
        std::string key = word(x % 200000);
        auto &rec = by_name[key];
        if (!rec)
            rec = std::make_shared<Record>(Record{key, {}});
        rec->values.push_back(static_cast<int>(i));
        index[i % 5000] = key;
        if (i % 11 == 0 && !by_name.empty())
            by_name.erase(by_name.begin());
    }

    std::vector<std::string> names;
    names.reserve(by_name.size());
    for (const auto &kv : by_name)
        names.push_back(kv.first + ":" + std::to_string(kv.second->values.size()));
    std::sort(names.begin(), names.end(), [](const std::string &a, const std::string &b) {
        return a.size() != b.size() ? a.size() < b.size() : a < b;
    });

    std::ostringstream out;
    size_t total = 0;
    for (const auto &n : names)
        total += n.size();
    out << by_name.size() << " records, " << index.size() << " indexed, " << total << " chars, first "
        << (names.empty() ? std::string("-") : names.front()) << ", last "
        << (names.empty() ? std::string("-") : names.back()) << "\n";
    std::fputs(out.str().c_str(), stdout);
    return 0;
}
