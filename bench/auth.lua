-- wrk script: GET with the bearer token given as the first argument.
function init(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
end
