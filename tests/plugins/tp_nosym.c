/* tp_nosym -- a valid shared object that is not an ri plugin. */
#include "ri_plugin.h"

RI_EXPORT int tp_nosym_answer(void);

RI_EXPORT int tp_nosym_answer(void)
{
    return 42;
}
