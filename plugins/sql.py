"""What the SQL plugins share: the query definition and named-parameter binding."""

from .base import Plugin
from .errors import ConfigurationError
from .result import QueryResult
from .sqlparams import bind


class SQLPlugin(Plugin):
    """A plugin whose query is ``{"query": "SELECT ... WHERE id = :id"}``; subclasses set
    ``dialect`` and ``paramstyle`` and implement ``execute_sql``."""

    dialect = ""
    paramstyle = "pyformat"

    def execute_sql(self, connection, sql, values, deadline):
        """Runs bound SQL; returns ``(column names or None, rows, affected row count)``."""
        raise NotImplementedError

    def run(self, connection, query, parameters, deadline):
        sql = query.get("query", query.get("sql"))
        if not isinstance(sql, str) or not sql.strip():
            raise ConfigurationError("The query needs SQL text in 'query'", code="invalid_query")
        driver_sql, values = bind(sql, parameters, dialect=self.dialect, style=self.paramstyle)
        columns, rows, affected_rows = self.execute_sql(connection, driver_sql, self.adapt(values), deadline)
        if columns is None:
            return QueryResult(row_count=max(affected_rows, 0), metadata={"affected_rows": affected_rows})
        return QueryResult(columns=columns, rows=rows, row_count=len(rows))

    def adapt(self, values):
        """Parameter values as the driver binds them."""
        return values


def required_option(options, *names):
    for name in names:
        if options.get(name) not in (None, ""):
            return options[name]
    raise ConfigurationError(f"The data source needs the option '{names[0]}'", code="invalid_options")
