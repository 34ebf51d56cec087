# targets.mk - per-target extra flags and libraries for tests/targets/*.
# TARGET_EXTRA_<name> adds compiler flags, TARGET_LIBS_<name> libraries.
TARGET_LIBS_jemalloc_user := -ljemalloc
TARGET_LIBS_plugin_host := -ldl
TARGET_LIBS_criterion_suite := -lcriterion
TARGET_LIBS_plugin_leak := -ldl
TARGET_LIBS_ctor_alloc := -L$(BUILD)/targets -lmtctor -Wl,-rpath,'$$ORIGIN'
