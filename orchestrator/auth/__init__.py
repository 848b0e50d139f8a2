"""Who is calling the API and what they may do: authentication, roles, runner binding."""
