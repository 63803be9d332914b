"""Coverage instrumentation for the harnesses. ``atheris.instrument_imports`` does not see
modules loaded through the editable install's custom loader, so the functions of the modules
under test are instrumented one by one (``atheris.instrument_func`` patches their code)."""
import inspect


def instrument_modules(atheris, *modules) -> int:
    n = 0
    for mod in modules:
        for name, obj in list(vars(mod).items()):
            if inspect.isfunction(obj) and obj.__module__ == mod.__name__:
                atheris.instrument_func(obj)
                n += 1
            elif inspect.isclass(obj) and obj.__module__ == mod.__name__:
                for attr in vars(obj).values():
                    if inspect.isfunction(attr):
                        atheris.instrument_func(attr)
                        n += 1
    return n
